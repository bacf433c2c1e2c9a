import pytest
from django.contrib.auth import get_user_model

from jobs.models import JobRun
from tests.factories import JobFactory, JobRunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456789")
    client.force_login(admin)
    return client


def test_runs_list_shows_badges_progress_and_filters(admin_client):
    JobRunFactory(status="PROGRESS", progress_current=30, progress_total=120, progress_step="embedding")
    JobRunFactory(status="FAILURE", dead=True, error="boom")
    page = admin_client.get("/admin/jobs/jobrun/").content.decode()
    assert "PROGRESS" in page and "25%" in page and "FAILURE · dead" in page
    assert admin_client.get("/admin/jobs/jobrun/?dead__exact=1").status_code == 200


def test_run_page_and_admin_index_dashboard(admin_client):
    run = JobRunFactory(status="FAILURE", dead=True, error="broken pipe", traceback="Traceback ...")
    page = admin_client.get(f"/admin/jobs/jobrun/{run.id}/change/").content.decode()
    assert "broken pipe" in page and "Traceback" in page
    index = admin_client.get("/admin/").content.decode()
    assert "Background work" in index and "broken pipe" in index


def test_retry_and_cancel_actions(admin_client):
    failed = JobRunFactory(status="FAILURE", dead=True)
    queued = JobRunFactory(status="QUEUED")
    admin_client.post("/admin/jobs/jobrun/", {"action": "retry_runs", "_selected_action": [failed.id]})
    assert JobRun.objects.filter(retry_of=failed, triggered_by="admin").count() == 1
    admin_client.post("/admin/jobs/jobrun/", {"action": "cancel_runs", "_selected_action": [queued.id]})
    assert JobRun.objects.get(id=queued.id).status == "REVOKED"


def test_job_run_now_action(admin_client):
    job = JobFactory(kind="jobs.ping")
    admin_client.post("/admin/jobs/job/", {"action": "run_now", "_selected_action": [job.id]})
    assert JobRun.objects.filter(job=job, triggered_by="admin").count() == 1


def test_task_result_admin_retries_tracked_tasks(admin_client):
    from django_celery_results.models import TaskResult

    failed = JobRunFactory(status="FAILURE", dead=True)
    result = TaskResult.objects.create(task_id=str(failed.id), status="FAILURE", task_name="jobs.ping")
    admin_client.post("/admin/django_celery_results/taskresult/",
                      {"action": "retry_task_results", "_selected_action": [result.pk]})
    assert JobRun.objects.filter(retry_of=failed).count() == 1
