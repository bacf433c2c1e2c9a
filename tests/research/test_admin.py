"""Digests and findings in the admin: what a reader needs, read-only, linked to runs and documents."""

import pytest
from django.contrib.auth import get_user_model

from tests.factories import DigestFactory, DocumentFactory, FindingFactory, JobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456789"))
    return client


def test_a_digest_page_shows_content_citations_documents_and_what_was_not_read(admin_client):
    document = DocumentFactory(title="wal.txt")
    job = JobFactory(kind="research.digest", params={"topic": "Durability"}, owner=document.owner)
    digest = DigestFactory(owner=document.owner, job=job, questions=["What happens after a crash?"], partial=True,
                           unread=[{"document_id": None, "title": "gone.txt", "error": "PermanentError: deleted"}])
    digest.citations[0]["document_id"] = str(document.id)
    digest.save()
    digest.documents.set([document])

    page = admin_client.get(f"/admin/research/digest/{digest.id}/change/").content.decode()
    assert "## wal.txt" in page and "What happens after a crash?" in page
    assert f"/admin/documents/document/{document.id}/change/" in page  # covered, and cited
    assert "gone.txt: PermanentError: deleted" in page.replace("</a>", "").replace("<div>", "")
    assert f"/admin/jobs/jobrun/{digest.run_id}/change/" in page and "run-live" in page
    assert 'name="_save"' not in page  # read-only

    listing = admin_client.get("/admin/research/digest/?partial__exact=1").content.decode()
    assert "Durability" in listing
    job_page = admin_client.get(f"/admin/jobs/job/{job.id}/change/").content.decode()
    assert f'href="/admin/research/digest/{digest.id}/change/"' in job_page and "(partial)" in job_page


def test_a_finding_page_shows_its_passages(admin_client):
    finding = FindingFactory()
    page = admin_client.get(f"/admin/research/finding/{finding.id}/change/").content.decode()
    assert "Write-ahead logging flushes every change first." in page and "[1]" in page
