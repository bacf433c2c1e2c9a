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
    from core.roles import OPERATORS
    from tests.factories import StaffFactory

    user, staff = UserFactory(), StaffFactory(groups=[OPERATORS])
    with pytest.raises(JobsError, match="JOB_MIN_INTERVAL_SECONDS"):
        definitions.job_create(name="busy", kind="jobs.ping", schedule={"every_seconds": 1}, owner=user)
    with pytest.raises(JobsError, match="JOB_MIN_INTERVAL_SECONDS"):
        definitions.job_create(name="busy", kind="jobs.ping", schedule={"crontab": "* * * * *"}, owner=user)
    job = definitions.job_create(name="calm", kind="jobs.ping", schedule={"every_seconds": 600}, owner=user)
    with pytest.raises(JobsError):
        definitions.job_update(job=job, data={"schedule": {"every_seconds": 10}}, actor=user)
    assert definitions.job_create(name="busy", kind="jobs.ping", schedule={"every_seconds": 1}, owner=staff)


def _periodic(job: Job):
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.get(id=Job.objects.get(id=job.id).periodic_task_id)


@pytest.mark.django_db
def test_a_user_demoted_from_staff_loses_staff_only_and_too_fast_schedules_at_once(settings):
    from django.contrib.admin.models import LogEntry

    from core.roles import OPERATORS
    from tests.factories import StaffFactory

    settings.JOB_MIN_INTERVAL_SECONDS = 300
    staff = StaffFactory(groups=[OPERATORS])
    everyone = definitions.job_create(name="clean", kind="jobs.cleanup_runs", schedule={"every_seconds": 3600},
                                      owner=staff)
    fast = definitions.job_create(name="fast", kind="jobs.ping", schedule={"every_seconds": 10}, owner=staff)
    minutely = definitions.job_create(name="minutely", kind="jobs.ping", schedule={"crontab": "* * * * *"},
                                      owner=staff)
    calm = definitions.job_create(name="calm", kind="jobs.ping", schedule={"every_seconds": 600}, owner=staff)

    staff.is_staff = False
    staff.save()

    assert not _periodic(everyone).enabled and not Job.objects.get(id=everyone.id).enabled
    assert Job.objects.get(id=fast.id).schedule == {"every_seconds": 300} and _periodic(fast).interval.every == 300
    assert _periodic(fast).enabled
    assert not _periodic(minutely).enabled
    assert _periodic(calm).enabled and _periodic(calm).interval.every == 600
    history = {entry.object_id: entry.change_message for entry in LogEntry.objects.filter(user=staff)}
    assert set(history) == {str(everyone.id), str(fast.id), str(minutely.id)}
    assert "staff-only" in history[str(everyone.id)] and "Slowed to every 300 s" in history[str(fast.id)]


@pytest.mark.django_db
def test_a_firing_is_checked_against_the_owners_rights_as_they_are_now(settings):
    """Rights changed where no signal is sent (a bulk update): beat's next firing runs nothing and
    slows the schedule."""
    from django.contrib.auth import get_user_model

    from core.roles import OPERATORS
    from jobs.models import JobRun
    from jobs.tasks import trigger_job
    from tests.factories import StaffFactory

    settings.JOB_MIN_INTERVAL_SECONDS = 300
    owner = StaffFactory(groups=[OPERATORS])
    fast = definitions.job_create(name="fast", kind="jobs.ping", schedule={"every_seconds": 10}, owner=owner)
    everyone = definitions.job_create(name="clean", kind="jobs.cleanup_runs", schedule={"every_seconds": 3600},
                                      owner=owner)
    get_user_model().objects.filter(id=owner.id).update(is_staff=False)

    assert trigger_job.run(fast.id) is None and trigger_job.run(everyone.id) is None
    assert not JobRun.objects.filter(job__in=[fast, everyone]).exists()
    assert Job.objects.get(id=fast.id).schedule == {"every_seconds": 300}
    assert not Job.objects.get(id=everyone.id).enabled


@pytest.mark.django_db
def test_a_run_started_by_an_operator_belongs_to_the_jobs_owner():
    """"Run now" on alice's job by an admin: alice sees the run (and her digest's link to it)."""
    from jobs.models import TriggeredBy
    from tests.factories import UserFactory

    alice, admin = UserFactory(), UserFactory(is_staff=True, is_superuser=True)
    job = definitions.job_create(name="ping", kind="jobs.ping", owner=alice)
    run = definitions.job_trigger(job=job, triggered_by=TriggeredBy.ADMIN, actor=admin)
    assert (run.owner, run.started_by, run.triggered_by) == (alice, admin, "admin")


@pytest.mark.django_db
def test_nonsense_is_refused_when_saved_not_run():
    from jobs.errors import JobsError
    from jobs.models import TriggeredBy

    with pytest.raises(JobsError, match="needs an owner") as refused:
        definitions.job_create(name="digest", kind="research.digest", params={"topic": "tides"})
    assert refused.value.field == "owner"
    orphan = Job.objects.create(name="old digest", kind="research.digest", params={"topic": "tides"})
    with pytest.raises(JobsError, match="needs an owner"):
        definitions.job_trigger(job=orphan, triggered_by=TriggeredBy.ADMIN)
    with pytest.raises(JobsError, match="from 1 to 2147483647"):
        definitions.job_create(name="forever", kind="jobs.ping", schedule={"every_seconds": 2**31})
    assert definitions.job_create(name="rare", kind="jobs.ping", schedule={"every_seconds": 2**31 - 1})
