"""Maintenance services against the real database."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs.models import JobRun
from jobs.services import maintenance
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

    assert maintenance.runs_cleanup() == {"runs": 3, "dead_runs": 1}
    assert set(JobRun.objects.values_list("id", flat=True)) >= {recent.id, running.id}
    assert JobRun.objects.filter(dead=True).count() == 1


def test_cleanup_runs_in_a_run_reports_each_batch_and_goes_on_from_its_checkpoint_after_a_slice(monkeypatch):
    from tests.support.run_context import FakeRunContext, Yielded

    monkeypatch.setattr(maintenance, "CLEANUP_BATCH_SIZE", 2)
    old = timezone.now() - timedelta(days=40)
    JobRunFactory.create_batch(5, status="SUCCESS", finished_at=old)
    kept = JobRunFactory(status="SUCCESS", finished_at=timezone.now())

    first = FakeRunContext(slice_ends=True)
    with pytest.raises(Yielded):
        maintenance.runs_cleanup(ctx=first)
    assert first.reports == [(2, 5, "deleting")] and first.checkpoints == {"runs": 2, "dead_runs": 0}
    assert JobRun.objects.count() == 4

    # The next slice, as the run's next attempt gets it: the counts kept, the rest deleted.
    second = FakeRunContext(checkpoints=dict(first.checkpoints))
    assert maintenance.runs_cleanup(ctx=second) == {"runs": 5, "dead_runs": 0}
    assert second.reports == [(4, 5, "deleting"), (5, 5, "deleting")]
    assert list(JobRun.objects.values_list("id", flat=True)) == [kept.id]


def test_cleanup_results_deletes_in_batches(monkeypatch):
    monkeypatch.setattr(maintenance, "CLEANUP_BATCH_SIZE", 7)
    old = timezone.now() - timedelta(days=30)
    TaskResult.objects.bulk_create([TaskResult(task_id=f"old-{i}", status="SUCCESS") for i in range(20)])
    TaskResult.objects.update(date_done=old)
    TaskResult.objects.create(task_id="new", status="SUCCESS")
    assert maintenance.results_cleanup()["task_results"] == 20
    assert list(TaskResult.objects.values_list("task_id", flat=True)) == ["new"]


def test_reaper_takes_over_runs_whose_heartbeat_stopped_and_leaves_live_ones(settings):
    silent_since = timezone.now() - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 5)
    last = JobRunFactory(status="PROGRESS", attempts=1, max_attempts=1, heartbeat_at=silent_since)
    again = JobRunFactory(status="STARTED", attempts=1, max_attempts=3, heartbeat_at=silent_since)
    # A long hard limit no longer protects a silent run: only the heartbeat counts.
    long_limit = JobRunFactory(status="STARTED", attempts=1, max_attempts=2, time_limit=3600,
                               heartbeat_at=silent_since)
    alive = JobRunFactory(status="PROGRESS", attempts=1, max_attempts=1, heartbeat_at=timezone.now())

    assert maintenance.runs_reap_stale() == {"requeued": 2, "failed": 1, "revoked": 0}
    for run in (last, again, long_limit, alive):
        run.refresh_from_db()
    assert (last.status, last.dead) == ("FAILURE", True) and "worker lost" in last.error
    assert [entry["event"] for entry in last.attempt_log] == ["worker lost"]
    assert again.status == long_limit.status == "QUEUED"
    assert [entry["event"] for entry in again.attempt_log] == ["worker lost"]
    assert alive.status == "PROGRESS"
    assert TaskResult.objects.get(task_id=str(last.id)).status == "FAILURE"
