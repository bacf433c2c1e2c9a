from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone

from documents.models import Document
from documents.services import documents_maintain
from jobs.constants import Queue
from jobs.models import JobRun
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _age(key: str, hours: float) -> None:
    import os

    then = (timezone.now() - timedelta(hours=hours)).timestamp()
    os.utime(default_storage.path(key), (then, then))


def test_removes_orphan_files_and_redispatches_stuck_documents():
    user = UserFactory()
    orphan = default_storage.save(f"documents/{user.id}/00000000-0000-0000-0000-00000000dead/original",
                                  ContentFile(b"left behind"))
    _age(orphan, hours=2)
    # Stored a moment ago with no row yet: an upload whose transaction has not committed. Kept.
    in_flight = default_storage.save(f"documents/{user.id}/00000000-0000-0000-0000-0000000000ff/original",
                                     ContentFile(b"being uploaded"))
    dead_run = JobRun.objects.create(kind="documents.ingest", queue=Queue.DOCUMENTS, status="FAILURE",
                                    finished_at=timezone.now())
    stuck = Document.objects.create(owner=user, title="stuck", original_name="s.txt", format="text", size=5,
                                    sha256="a" * 64, file="documents/x/stuck/original", status="queued",
                                    run=dead_run, created_at=timezone.now() - timedelta(hours=1))
    fresh = Document.objects.create(owner=user, title="fresh", original_name="f.txt", format="text", size=5,
                                    sha256="b" * 64, file="documents/x/fresh/original", status="queued")

    result = documents_maintain()

    assert result == {"orphan_files_removed": 1, "documents_redispatched": 1}
    assert not default_storage.exists(orphan)
    assert default_storage.exists(in_flight)
    stuck.refresh_from_db()
    assert stuck.run_id != dead_run.id and stuck.run.kind == "documents.ingest"
    assert Document.objects.get(id=fresh.id).run is None
