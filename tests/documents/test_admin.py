import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from documents.models import Document
from jobs.constants import Queue
from jobs.models import JobRun

pytestmark = pytest.mark.django_db


def test_document_list_and_reprocess_action(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456789")
    client.force_login(admin)
    run = JobRun.objects.create(kind="documents.ingest", queue=Queue.DOCUMENTS, status="PROGRESS", progress_current=3,
                                progress_total=12, progress_step="embedding")
    document = Document.objects.create(owner=admin, title="Atlas", original_name="atlas.txt", format="text", size=1,
                                       sha256="0" * 64, file="documents/x/y/original", status="processing", run=run)
    page = client.get("/admin/documents/document/").content.decode()
    assert "Atlas" in page and "25%" in page
    JobRun.objects.filter(id=run.id).update(status="FAILURE", finished_at=timezone.now())
    client.post("/admin/documents/document/", {"action": "reprocess", "_selected_action": [document.id]})
    assert Document.objects.get(id=document.id).run_id != run.id


def test_reprocessing_anothers_document_takes_the_permission_to_change_documents_as_in_the_api(client):
    """The admin asks what the API asks (core.permissions): documents' change permission, not runs'."""
    from django.contrib.auth.models import Permission

    from tests.factories import DocumentFactory, StaffFactory

    document = DocumentFactory(status="failed")

    def staff_with(*codenames):
        user = StaffFactory()
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        return user

    for user, allowed in ((staff_with("view_document", "change_jobrun"), False),
                          (staff_with("view_document", "change_document"), True)):
        client.force_login(user)
        before = Document.objects.get(id=document.id).run_id
        client.post("/admin/documents/document/", {"action": "reprocess", "_selected_action": [document.id]})
        assert (Document.objects.get(id=document.id).run_id != before) is allowed, user.get_all_permissions()

