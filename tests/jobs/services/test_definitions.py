"""Job definitions and their beat schedules."""

import pytest

from jobs.models import Job
from jobs.services import definitions

pytestmark = pytest.mark.django_db


def test_seeding_schedules_is_idempotent_and_keeps_edits():
    created = definitions.schedules_seed()
    assert "Clean up old runs" in created and "Clean up task results" in created
    job = Job.objects.get(name="Clean up old runs")
    definitions.job_update(job=job, data={"schedule": {"every_seconds": 300}, "enabled": False})
    assert definitions.schedules_seed() == []
    job.refresh_from_db()
    assert job.schedule == {"every_seconds": 300} and not job.enabled
    assert not job.periodic_task.enabled


def test_housekeeping_is_no_longer_seeded_as_jobs():
    definitions.schedules_seed()
    assert not Job.objects.filter(kind__in=("jobs.dispatch_pending", "jobs.reap_stale_runs")).exists()
