import pytest
from django.core.management import call_command

from jobs.models import JobRun
from jobs.registry import queues_all
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_ping_answers_on_every_queue_through_a_real_worker(celery_worker, capsys):
    call_command("celery_check", timeout=30)
    out = capsys.readouterr().out
    queues = queues_all()
    for queue in queues:
        assert f"{queue}" in out and "ok" in out.split(queue, 1)[1].splitlines()[0]
    assert set(JobRun.objects.filter(kind="jobs.ping", status="SUCCESS").values_list("queue", flat=True)) == set(queues)


def test_request_id_reaches_the_response_and_the_worker_log(celery_worker, api, user):
    from jobs.services.definitions import job_create

    job = job_create(name="echo", kind="jobs.ping", params={"echo": "traced"}, owner=user)
    response = api.post(f"/api/jobs/{job.id}/trigger/", {}, format="json", HTTP_X_REQUEST_ID="req-trace-42")
    assert response.status_code == 202
    assert response["X-Request-ID"] == "req-trace-42"
    run_id = response.json()["id"]
    wait_until(lambda: JobRun.objects.get(id=run_id).status == "SUCCESS", message="ping run")
    assert JobRun.objects.get(id=run_id).correlation_id == "req-trace-42"

    records = wait_until(lambda: celery_worker.log_records(run_id=run_id, correlation_id="req-trace-42"),
                         timeout=10, message="worker log line with the request id")
    assert records[0]["message"] == "run finished" and records[0]["status"] == "SUCCESS"


def test_a_request_without_an_id_gets_one(client):
    response = client.get("/api/health/")
    assert len(response["X-Request-ID"]) == 32


def test_a_worker_replaces_its_pool_processes_after_the_configured_number_of_tasks(celery_worker, settings):
    """What `celery -A project inspect stats` shows: Celery's own setting, in force."""
    from project.celery import app

    stats = wait_until(lambda: app.control.inspect(timeout=5).stats(), timeout=30, message="worker stats")
    assert {node: answer["pool"]["max-tasks-per-child"] for node, answer in stats.items()} == {
        node: settings.CELERY_WORKER_MAX_TASKS_PER_CHILD for node in stats}
    assert settings.CELERY_WORKER_MAX_TASKS_PER_CHILD > 0  # on by default
