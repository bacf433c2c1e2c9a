"""Pipeline faults through a real worker: redelivery and cancel."""

import pytest
from django.db import transaction

from documents import services
from documents.models import Chunk, Document
from jobs.models import JobRun
from jobs.services.runs import run_cancel, run_dispatch
from tests.factories import UserFactory
from tests.support.files import upload
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

LONG_TEXT = "\n\n".join(
    f"Paragraph {i}: the river delta shifts its channels every season, and the ferrymen keep a log of depths "
    f"measured at dawn, noting sandbars, currents and the colour of the water near marker {i}." for i in range(400)
).encode()


def test_a_redelivered_ingestion_leaves_one_set_of_chunks(celery_worker):
    user = UserFactory()
    document, _ = services.document_upload(owner=user, upload=upload("notes.txt", b"Short note on tides.\n" * 20))
    wait_until(lambda: Document.objects.get(id=document.id).status == "ready", timeout=120, message="ready")
    count = Chunk.objects.filter(document=document).count()
    # A reprocess, and a duplicate delivery of its message, as a lost ack would cause.
    run = services.document_reprocess(document=Document.objects.get(id=document.id))
    run_dispatch(run=JobRun.objects.get(id=run.id))
    wait_until(lambda: JobRun.objects.get(id=run.id).status == "SUCCESS", timeout=120, message="reprocess")
    assert Chunk.objects.filter(document=document).count() == count
    assert list(Chunk.objects.filter(document=document).values_list("chunk_index", flat=True)) == list(range(count))


def test_cancel_during_embedding_ends_cancelled_with_no_chunks(celery_worker):
    user = UserFactory()
    with transaction.atomic():
        document, _ = services.document_upload(owner=user, upload=upload("delta.txt", LONG_TEXT))
    run_id = document.run_id
    wait_until(lambda: JobRun.objects.get(id=run_id).progress_step == "embedding"
               and JobRun.objects.get(id=run_id).progress_current > 0, timeout=120, interval=0.05,
               message="embedding to start")
    run_cancel(run=JobRun.objects.get(id=run_id))
    wait_until(lambda: Document.objects.get(id=document.id).status == "cancelled", timeout=30, message="cancelled")
    assert JobRun.objects.get(id=run_id).status == "REVOKED"
    assert Chunk.objects.filter(document=document).count() == 0
