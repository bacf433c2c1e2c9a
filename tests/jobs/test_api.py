import pytest

from jobs.constants import Queue
from jobs.models import Job, JobRun
from tests.factories import JobFactory, JobRunFactory, operator_make
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db


def test_another_users_runs_and_jobs_are_404(api, other_user):
    run = JobRunFactory(owner=other_user)
    job = JobFactory(owner=other_user)
    assert api.get(f"/api/runs/{run.id}/").status_code == 404
    assert api.post(f"/api/runs/{run.id}/cancel/").status_code == 404
    assert api.get(f"/api/jobs/{job.id}/").status_code == 404
    assert api.post(f"/api/jobs/{job.id}/trigger/", {}, format="json").status_code == 404
    assert api.get("/api/runs/").json()["count"] == 0
    assert JobRun.objects.get(id=run.id).cancel_requested is False


def test_staff_see_every_run_with_the_view_permission_not_with_the_flag_alone(api, user, other_user):
    from django.contrib.auth.models import Permission

    JobRunFactory(owner=other_user)
    user.is_staff = True
    user.save()
    assert api.get("/api/runs/").json()["count"] == 0
    user.user_permissions.add(Permission.objects.get(codename="view_jobrun"))
    for cache in ("_perm_cache", "_user_perm_cache"):
        user.__dict__.pop(cache, None)
    assert api.get("/api/runs/").json()["count"] == 1


def test_the_staff_list_reads_its_page_off_an_index_in_its_order(api, user):
    """Newest first, for every run: the page is read backwards off `run_created`, never by sorting
    the table (asked with sequential scans off, as a large table would have the planner do)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    JobRunFactory.create_batch(3)
    operator_make(user)
    with CaptureQueriesContext(connection) as queries:
        assert api.get("/api/runs/").status_code == 200
    page = next(q["sql"] for q in queries if 'FROM "jobs_jobrun"' in q["sql"] and "ORDER BY" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {page}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan Backward using run_created on jobs_jobrun" in plan, plan
    assert "Sort" not in plan.split("SubPlan")[0], plan


def test_unknown_ids_are_404(api):
    assert api.get("/api/runs/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert api.get("/api/runs/not-a-uuid/").status_code == 404
    assert api.get("/api/jobs/999999/").status_code == 404


def test_run_filters(api, user):
    JobRunFactory(owner=user, status="FAILURE", dead=True, kind="jobs.ping")
    JobRunFactory(owner=user, status="SUCCESS", kind="jobs.cleanup_runs", queue=Queue.MAINTENANCE)
    assert api.get("/api/runs/?status=FAILURE").json()["count"] == 1
    assert api.get("/api/runs/?dead=true").json()["count"] == 1
    assert api.get("/api/runs/?queue=maintenance").json()["count"] == 1
    assert api.get("/api/runs/?kind=jobs.ping").json()["count"] == 1
    assert api.get("/api/runs/?created_after=2000-01-01T00:00:00Z").json()["count"] == 2
    assert api.get("/api/runs/?created_before=2000-01-01T00:00:00Z").json()["count"] == 0


def test_cancel_finished_is_409_and_retry_of_success_is_409(api, user):
    run = JobRunFactory(owner=user, status="SUCCESS")
    assert api.post(f"/api/runs/{run.id}/cancel/").status_code == 409
    assert api.post(f"/api/runs/{run.id}/retry/").status_code == 409
    assert JobRun.objects.count() == 1


def test_a_job_with_many_problems_is_refused_naming_every_one_at_once(api):
    response = api.post("/api/jobs/", {
        "name": "", "kind": "research.digest", "schedule": {"crontab": "61 * * *"},
        "params": {"topic": "", "questions": [f"q{n}?" for n in range(30)], "bogus": 1}}, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields == {
        "name": ["This field may not be blank."],
        "params.bogus": ["is not a param of this kind."],
        "params.questions": ["takes at most 10 items (it has 30)."],
        "params.topic": ["must not be empty."],
        "schedule": ["schedule.crontab needs five fields: minute hour day-of-month month day-of-week."],
    }
    assert "(and 4 more)" in response.json()["error"]["message"]
    assert not Job.objects.exists()
    patch_target = api.post("/api/jobs/", {"name": "fine", "kind": "jobs.ping"}, format="json").json()["id"]
    response = api.patch(f"/api/jobs/{patch_target}/", {"name": "x" * 300, "schedule": {"every_seconds": 0}},
                         format="json")
    assert response.status_code == 400 and set(response.json()["error"]["fields"]) == {"name", "schedule"}
    assert Job.objects.get(id=patch_target).name == "fine"


def test_bad_params_are_a_400_naming_the_field(api, user):
    operator_make(user)
    response = api.post("/api/jobs/", {"name": "x", "kind": "jobs.cleanup_runs",
                                       "params": {"older_than_days": "soon"}}, format="json")
    assert response.status_code == 400
    assert "older_than_days" in str(response.json())
    response = api.post("/api/jobs/", {"name": "x", "kind": "no.such.kind"}, format="json")
    assert response.status_code == 400 and "kind" in response.json()["error"]["fields"]
    response = api.post("/api/jobs/", {"name": "x", "kind": "jobs.ping", "schedule": {"crontab": "61 * * *"}},
                        format="json")
    assert response.status_code == 400 and "schedule" in response.json()["error"]["fields"]
    response = api.post("/api/jobs/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert Job.objects.count() == 0


def test_maintenance_kinds_are_for_staff_only(api, user):
    kinds = {k["kind"] for k in api.get("/api/jobs/kinds/").json()}
    assert {k for k in kinds if not k.startswith("tests.")} == {"jobs.ping", "research.digest"}
    response = api.post("/api/jobs/", {"name": "wipe", "kind": "jobs.cleanup_runs"}, format="json")
    assert response.status_code == 403 and "staff" in str(response.json())
    assert Job.objects.count() == 0


def test_kinds_lists_params_schemas(api, user):
    operator_make(user)
    kinds = {k["kind"]: k for k in api.get("/api/jobs/kinds/").json()}
    assert {"jobs.ping", "jobs.cleanup_results", "jobs.cleanup_runs", "documents.maintain"} <= set(kinds)
    assert kinds["jobs.cleanup_runs"]["queue"] == Queue.MAINTENANCE
    assert "older_than_days" in kinds["jobs.cleanup_runs"]["params_schema"]["properties"]


def test_schedule_is_kept_in_beat(api, user):
    from django_celery_beat.models import PeriodicTask

    operator_make(user)
    job_id = api.post("/api/jobs/", {"name": "nightly", "kind": "jobs.cleanup_runs",
                                     "schedule": {"crontab": "0 3 * * *", "timezone": "Europe/Paris"}},
                      format="json").json()["id"]
    periodic = Job.objects.get(id=job_id).periodic_task
    assert periodic.crontab.hour == "3" and str(periodic.crontab.timezone) == "Europe/Paris"
    api.patch(f"/api/jobs/{job_id}/", {"schedule": {"every_seconds": 60}, "enabled": False}, format="json")
    periodic.refresh_from_db()
    assert periodic.interval.every == 60 and periodic.crontab is None and not periodic.enabled
    assert api.delete(f"/api/jobs/{job_id}/").status_code == 204
    assert not PeriodicTask.objects.filter(id=periodic.id).exists()


@pytest.mark.django_db(transaction=True)
def test_trigger_with_params_override_runs_and_lists_under_the_job(celery_worker, api):
    job_id = api.post("/api/jobs/", {"name": "echo", "kind": "jobs.ping", "params": {"echo": "a"}},
                      format="json").json()["id"]
    response = api.post(f"/api/jobs/{job_id}/trigger/", {"params": {"echo": "b"}}, format="json")
    assert response.status_code == 202 and response.json()["status"] == "QUEUED"
    run_id = response.json()["id"]
    wait_until(lambda: api.get(f"/api/runs/{run_id}/").json()["status"] == "SUCCESS", message="triggered run")
    body = api.get(f"/api/runs/{run_id}/").json()
    assert body["result"]["echo"] == "b" and body["triggered_by"] == "api"
    assert body["progress"]["percent"] == 100.0
    assert [r["id"] for r in api.get(f"/api/jobs/{job_id}/runs/").json()["results"]] == [run_id]
    stats = api.get("/api/runs/stats/").json()
    # A user sees counts of their own runs and how many workers answer, not the workers' names.
    assert stats["by_status"]["SUCCESS"] == 1 and stats["workers_online"] >= 1
    assert stats["queue_depths"] == {"documents": 0, "chat": 0, "jobs": 0, "research": 0, "maintenance": 0}


def test_a_user_demoted_from_staff_can_no_longer_edit_or_run_a_staff_only_job(api, user):
    operator_make(user)
    job_id = api.post("/api/jobs/", {"name": "wipe", "kind": "jobs.cleanup_runs"}, format="json").json()["id"]
    user.is_staff = False
    user.save()
    assert api.post(f"/api/jobs/{job_id}/trigger/", {}, format="json").status_code == 403
    assert api.patch(f"/api/jobs/{job_id}/", {"enabled": True}, format="json").status_code == 403
    # The demotion itself disabled it; the owner cannot switch it back on.
    assert JobRun.objects.count() == 0 and not Job.objects.get(id=job_id).enabled


def test_job_names_are_unique_per_owner_and_say_nothing_of_others(api, other_api):
    assert other_api.post("/api/jobs/", {"name": "alice-ping", "kind": "jobs.ping"}, format="json").status_code == 201
    assert api.post("/api/jobs/", {"name": "alice-ping", "kind": "jobs.ping"}, format="json").status_code == 201
    again = api.post("/api/jobs/", {"name": "alice-ping", "kind": "jobs.ping"}, format="json")
    assert again.status_code == 400 and "You already have" in str(again.json())


def test_filtering_by_another_users_job_answers_as_for_an_unknown_one(api, other_user):
    theirs = JobFactory(owner=other_user)
    assert api.get(f"/api/runs/?job={theirs.id}").status_code == api.get("/api/runs/?job=999999").status_code == 400


def test_out_of_range_dates_are_a_400():
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    client = APIClient()
    client.force_authenticate(UserFactory())
    assert client.get("/api/runs/?created_before=2025-01-01T00:00:00%2B21:00").status_code == 400
    assert client.get("/api/runs/?created_before=2025-01-01T00:00:00%2B02:00").status_code == 200


# --- tasks, in Celery's words (the seeds' contract) ---------------------------------------------

# The seeds' contract, and where to follow the task live instead of polling (`events_url`).
TASK_FIELDS = {"task_id", "status", "progress", "current", "total", "description", "elapsed_time",
               "estimated_remaining", "result", "error", "message", "events_url"}


def _poll_task(api, task_id: str, *, timeout: float = 120) -> dict:
    """What a client written against a Celery task-status API does: poll by task id, read the
    contract's names and nothing else, stop at a final state."""
    import time

    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"/api/tasks/{task_id}/")
        assert response.status_code == 200 and set(response.json()) == TASK_FIELDS, response.json()
        body = response.json()
        seen.append(body["status"])
        if body["status"] in ("SUCCESS", "FAILURE", "REVOKED"):
            return {**body, "seen": seen}
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} never ended: {seen[-5:]}")


@pytest.mark.worker
def test_a_client_of_the_seeds_task_status_contract_works_unchanged(transactional_db, celery_worker, api, user,
                                                                     other_api):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = api.post("/api/documents/", {"file": SimpleUploadedFile(
        "keeper.txt", b"The keeper logs the lamp's hours and the weather every night.")}, format="multipart")
    assert upload.status_code == 202 and upload.json()["message"] == "Task is waiting to start."
    tasks = {"upload": upload.json()["task_id"]}
    assert _poll_task(api, tasks["upload"])["status"] == "SUCCESS"

    session = api.post("/api/chat/sessions/", {}, format="json").json()["id"]
    posted = api.post(f"/api/chat/sessions/{session}/messages/", {"content": "What does the keeper log?"},
                      format="json").json()
    assert posted["status"] == "PENDING" and posted["message"]["content"] == "What does the keeper log?"
    tasks["reply"] = posted["task_id"]
    assert _poll_task(api, tasks["reply"])["status"] == "SUCCESS"
    summary = api.post(f"/api/chat/sessions/{session}/summarize/", {}, format="json").json()
    tasks["summary"] = summary["task_id"]
    job = api.post("/api/jobs/", {"name": "keeper digest", "kind": "research.digest",
                                  "params": {"topic": "the keeper's log"}}, format="json").json()
    tasks["digest"] = api.post(f"/api/jobs/{job['id']}/trigger/", {}, format="json").json()["task_id"]

    for name, task_id in tasks.items():
        final = _poll_task(api, task_id)
        assert (final["status"], final["progress"], final["error"]) == ("SUCCESS", 100.0, None), (name, final)
        assert final["message"] == "Task completed successfully." and final["elapsed_time"] is not None
        assert final["estimated_remaining"] is None and final["result"] is not None
        assert set(final["seen"]) <= {"PENDING", "STARTED", "PROGRESS", "SUCCESS"}, (name, final["seen"])
    # Never a leak: another user's task, a made-up id and a malformed one all read the same.
    for task_id in (tasks["reply"], "00000000-0000-0000-0000-000000000000", "not-a-task"):
        answer = other_api.get(f"/api/tasks/{task_id}/")
        assert answer.status_code == 200 and answer.json()["status"] == "UNKNOWN", answer.json()
    assert other_api.post(f"/api/tasks/{tasks['reply']}/cancel/").status_code == 404
    stats = api.get("/api/tasks/stats/").json()
    assert stats["by_status"]["SUCCESS"] >= 4 and "QUEUED" not in stats["by_status"]
    assert api.get("/api/tasks/health-check/").json()["checks"]["database"]["status"] == "ok"


def test_a_task_is_cancelled_and_retried_in_celerys_words(transactional_db, celery_worker, api, user):
    job = api.post("/api/jobs/", {"name": "slow", "kind": "tests.countdown",
                                  "params": {"steps": 50, "interval": 0.2}}, format="json").json()
    task_id = api.post(f"/api/jobs/{job['id']}/trigger/", {}, format="json").json()["task_id"]
    cancelled = api.post(f"/api/tasks/{task_id}/cancel/")
    assert cancelled.status_code == 202 and set(cancelled.json()) == TASK_FIELDS
    assert _poll_task(api, task_id)["status"] == "REVOKED"
    retried = api.post(f"/api/tasks/{task_id}/retry/")
    assert retried.status_code == 202 and retried.json()["task_id"] != task_id
    api.post(f"/api/tasks/{retried.json()['task_id']}/cancel/")


def test_a_run_an_operator_started_on_my_job_is_mine_to_see(api, user):
    from django.contrib.auth import get_user_model

    from jobs.models import TriggeredBy
    from jobs.services.definitions import job_create, job_trigger
    from jobs.services.steering import run_retry

    operator = get_user_model().objects.create_user("operator", is_staff=True)
    job = job_create(name="mine", kind="jobs.ping", owner=user)
    run = job_trigger(job=job, triggered_by=TriggeredBy.ADMIN, actor=operator)
    listed = api.get(f"/api/runs/?job={job.id}").json()["results"]
    assert [r["id"] for r in listed] == [str(run.id)] and listed[0]["started_by"] == operator.id
    JobRun.objects.filter(id=run.id).update(status="FAILURE", finished_at=run.created_at)
    retried, _ = run_retry(run=JobRun.objects.get(id=run.id), triggered_by=TriggeredBy.ADMIN, owner=operator)
    assert api.get(f"/api/runs/{retried.id}/").status_code == 200  # the retry is mine too
