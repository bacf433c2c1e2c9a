"""Maintenance services against the real database."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs import services
from jobs.models import Job, JobRun
from tests.factories import JobRunFactory

pytestmark = pytest.mark.django_db


def test_cleanup_runs_keeps_recent_and_dead_runs_longer(settings):
    old = timezone.now() - timedelta(days=40)
    ancient = timezone.now() - timedelta(days=100)
    JobRunFactory.create_batch(3, status="SUCCESS", finished_at=old)
    JobRunFactory(status="FAILURE", dead=True, finished_at=old)
    JobRunFactory(status="FAILURE", dead=True, finished_at=ancient)
    recent = JobRunFactory(status="SUCCESS", finished_at=timezone.now())
    running = JobRunFactory(status="PROGRESS", created_at=ancient)

    assert services.runs_cleanup() == {"runs": 3, "dead_runs": 1}
    assert set(JobRun.objects.values_list("id", flat=True)) >= {recent.id, running.id}
    assert JobRun.objects.filter(dead=True).count() == 1


def test_cleanup_results_deletes_in_batches(monkeypatch):
    monkeypatch.setattr(services, "CLEANUP_BATCH_SIZE", 7)
    old = timezone.now() - timedelta(days=30)
    TaskResult.objects.bulk_create([TaskResult(task_id=f"old-{i}", status="SUCCESS") for i in range(20)])
    TaskResult.objects.update(date_done=old)
    TaskResult.objects.create(task_id="new", status="SUCCESS")
    assert services.results_cleanup()["task_results"] == 20
    assert list(TaskResult.objects.values_list("task_id", flat=True)) == ["new"]


def test_reaper_fails_a_silent_run_with_no_attempts_left_and_requeues_others():
    silent_since = timezone.now() - timedelta(hours=1)
    last = JobRunFactory(status="PROGRESS", attempts=1, max_attempts=1, time_limit=10, heartbeat_at=silent_since)
    again = JobRunFactory(status="STARTED", attempts=1, max_attempts=3, time_limit=10, heartbeat_at=silent_since)
    alive = JobRunFactory(status="PROGRESS", attempts=1, max_attempts=1, time_limit=3600, heartbeat_at=silent_since)

    assert services.runs_reap_stale() == {"requeued": 1, "failed": 1}
    last.refresh_from_db(), again.refresh_from_db(), alive.refresh_from_db()
    assert (last.status, last.dead) == ("FAILURE", True) and "worker lost" in last.error
    assert again.status == "QUEUED"
    assert alive.status == "PROGRESS"


def test_seeding_schedules_is_idempotent_and_keeps_edits():
    created = services.schedules_seed()
    assert "Dispatch pending runs" in created and "Reap stale runs" in created
    job = Job.objects.get(name="Reap stale runs")
    services.job_update(job=job, data={"schedule": {"every_seconds": 300}, "enabled": False})
    assert services.schedules_seed() == []
    job.refresh_from_db()
    assert job.schedule == {"every_seconds": 300} and not job.enabled
    assert not job.periodic_task.enabled
