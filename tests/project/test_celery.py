import time

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


def test_a_cleanup_of_100000_runs_under_development_settings_keeps_the_workers_memory_flat(celery_worker_process):
    """DEBUG on, as under `make run`: Django would keep each connection's last 9,000 statements, and
    a cleanup's statements carry a thousand ids each. Workers keep none (project/celery.py)."""
    import threading

    import psutil
    from django.db import connection, transaction

    from jobs.services.runs import run_enqueue
    from tests.factories import JobRunFactory
    from tests.support import worker as worker_support

    template = JobRunFactory(status="SUCCESS", kind="jobs.ping", result={"pong": "x" * 200})
    with connection.cursor() as cursor:
        columns = [f.column for f in JobRun._meta.concrete_fields if f.column not in ("id", "finished_at")]
        listed = ", ".join(columns)
        cursor.execute(f"INSERT INTO jobs_jobrun (id, finished_at, {listed}) "
                       f"SELECT gen_random_uuid(), now() - interval '60 days', {listed} "
                       f"FROM jobs_jobrun, generate_series(1, 100000) WHERE id = %s", [template.id])
    worker = worker_support.worker_instead_of(celery_worker_process, "cleanup-worker", concurrency=1,
                                              queues="maintenance", DEBUG="true")
    try:
        pool = psutil.Process(worker.proc.pid).children(recursive=True)
        assert len(pool) == 1
        before = pool[0].memory_info().rss
        peak, running = [before], True

        def sample():
            while running:
                peak.append(pool[0].memory_info().rss)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with transaction.atomic():
            run = run_enqueue(kind="jobs.cleanup_runs", args={"older_than_days": 30})
        wait_until(lambda: JobRun.objects.get(id=run.id).status == "SUCCESS", timeout=240, interval=0.5,
                   message="the cleanup of 100,000 runs")
        running = False
        sampler.join()
    finally:
        worker.stop()
    assert JobRun.objects.get(id=run.id).result["runs"] >= 100000
    grown_mb = (max(peak) - before) / 2**20
    assert grown_mb < 50, f"the worker grew {grown_mb:.0f} MB"


@pytest.mark.integration
def test_celery_purge_names_every_queue_the_workers_serve():
    """Declared, not created on first use: `celery purge` (asked, and answered no) lists all five."""
    import subprocess
    import sys

    from core.queues import Queue
    from tests.support.worker import BASE_DIR, child_env

    asked = subprocess.run([sys.executable, "-m", "celery", "-A", "project", "purge"], input="N\n", text=True,
                           capture_output=True, cwd=BASE_DIR, env=child_env(), timeout=60)
    said = asked.stdout + asked.stderr
    named = said.split("from queues:", 1)[1].split(".", 1)[0]
    assert sorted(name.strip() for name in named.split(",")) == sorted(str(queue) for queue in Queue), said
