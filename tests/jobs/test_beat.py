"""Schedules through a real beat process: edits reach it without a restart; two beats never double up."""

import pytest

from jobs.models import JobRun
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def scheduled_runs(job_id):
    return JobRun.objects.filter(job_id=job_id, triggered_by="schedule")


def test_a_schedule_changed_through_the_api_fires_in_a_running_beat(celery_worker, api, beats):
    job_id = api.post("/api/jobs/", {"name": "hourly", "kind": "jobs.ping",
                                     "schedule": {"every_seconds": 3600}}, format="json").json()["id"]
    beat = beats("beat-a")
    wait_until(lambda: "beat lock acquired" in beat.log_text(), timeout=30, message="beat to start")
    assert not scheduled_runs(job_id).exists()
    # Results expire by our cleanup_results job alone: no celery.backend_cleanup beside it.
    from django_celery_beat.models import PeriodicTask

    assert not PeriodicTask.objects.filter(task="celery.backend_cleanup").exists()

    assert api.patch(f"/api/jobs/{job_id}/", {"schedule": {"every_seconds": 1}}, format="json").status_code == 200
    wait_until(lambda: scheduled_runs(job_id).filter(status="SUCCESS").exists(), timeout=30,
               message="the edited schedule to fire")
    assert beat.alive


def test_a_second_beat_waits_and_does_not_double_schedule(celery_worker, api, beats):
    import time

    job_id = api.post("/api/jobs/", {"name": "every-2s", "kind": "jobs.ping",
                                     "schedule": {"every_seconds": 2}}, format="json").json()["id"]
    first = beats("beat-first")
    wait_until(lambda: "beat lock acquired" in first.log_text(), timeout=30, message="first beat to lead")
    second = beats("beat-second")
    wait_until(lambda: "another beat holds the lock; waiting" in second.log_text(), timeout=30,
               message="second beat to stand by")
    window_start = scheduled_runs(job_id).count()
    time.sleep(10)
    fired = scheduled_runs(job_id).count() - window_start
    # One beat fires every 2 s: about 5 in 10 s. Two beats would give about 10.
    assert 3 <= fired <= 6, fired
    assert first.alive and second.alive
    assert "beat lock acquired" not in second.log_text()

    # When the leader stops, the standby takes over.
    first.stop()
    wait_until(lambda: "beat lock acquired" in second.log_text(), timeout=20, message="standby to take over")
