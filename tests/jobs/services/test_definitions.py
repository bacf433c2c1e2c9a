"""Job definitions and their beat schedules."""

import pytest

from jobs.models import Job
from jobs.services import definitions


@pytest.mark.django_db
def test_seeding_schedules_is_idempotent_and_keeps_edits():
    created = definitions.schedules_seed()
    assert "Clean up old runs" in created and "Clean up task results" in created
    job = Job.objects.get(name="Clean up old runs")
    definitions.job_update(job=job, data={"schedule": {"every_seconds": 300}, "enabled": False})
    assert definitions.schedules_seed() == []
    job.refresh_from_db()
    assert job.schedule == {"every_seconds": 300} and not job.enabled
    assert not job.periodic_task.enabled


@pytest.mark.django_db
def test_housekeeping_is_no_longer_seeded_as_jobs():
    definitions.schedules_seed()
    assert not Job.objects.filter(kind__in=("jobs.dispatch_pending", "jobs.reap_stale_runs")).exists()


def test_shortest_interval_of_a_schedule():
    assert definitions.schedule_shortest_interval({"every_seconds": 90}) == 90
    assert definitions.schedule_shortest_interval({"crontab": "*/5 * * * *", "timezone": "UTC"}) == 300
    assert definitions.schedule_shortest_interval({"crontab": "0 3 * * *", "timezone": "UTC"}) == 86400
    assert definitions.schedule_shortest_interval({"crontab": "0,1 9,17 * * *", "timezone": "UTC"}) == 60


@pytest.mark.django_db
def test_users_cannot_schedule_more_often_than_the_floor_but_staff_can(settings):
    from jobs.errors import JobsError
    from tests.factories import UserFactory

    settings.JOB_MIN_INTERVAL_SECONDS = 300
    user, staff = UserFactory(), UserFactory(is_staff=True)
    with pytest.raises(JobsError, match="JOB_MIN_INTERVAL_SECONDS"):
        definitions.job_create(name="busy", kind="jobs.ping", schedule={"every_seconds": 1}, owner=user)
    with pytest.raises(JobsError, match="JOB_MIN_INTERVAL_SECONDS"):
        definitions.job_create(name="busy", kind="jobs.ping", schedule={"crontab": "* * * * *"}, owner=user)
    job = definitions.job_create(name="calm", kind="jobs.ping", schedule={"every_seconds": 600}, owner=user)
    with pytest.raises(JobsError):
        definitions.job_update(job=job, data={"schedule": {"every_seconds": 10}}, actor=user)
    assert definitions.job_create(name="busy", kind="jobs.ping", schedule={"every_seconds": 1}, owner=staff)
