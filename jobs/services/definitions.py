"""Job definitions and their beat schedules: a job's schedule lives in django-celery-beat, kept in
step with the job by every write here."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from core.errors import ErrorCode, Problems
from jobs.constants import JOB_NAME_MAX_LENGTH, Queue
from jobs.errors import JobsError
from jobs.models import Job, JobRun, TriggeredBy
from jobs.registry import kind_get, runs_everyones_work
from jobs.services.runs import run_enqueue

TRIGGER_TASK = "jobs.trigger_job"
# django-celery-beat keeps an interval in a 32-bit integer column (about 68 years).
SCHEDULE_MAX_EVERY_SECONDS = 2**31 - 1

logger = logging.getLogger(__name__)


def schedule_shortest_interval(schedule: dict) -> float:
    """Seconds between the two closest firings of a validated schedule (pure: no database)."""
    if "every_seconds" in schedule:
        return float(schedule["every_seconds"])
    from celery.schedules import crontab

    minute, hour, *_ = schedule["crontab"].split()
    parsed = crontab(minute=minute, hour=hour)
    fires = sorted(h * 60 + m for h in parsed.hour for m in parsed.minute)
    gaps = [b - a for a, b in zip(fires, fires[1:])] + [fires[0] + 24 * 60 - fires[-1]]
    return 60.0 * min(gaps)


def _schedule_validate(schedule: Any, *, owner=None) -> dict | None:
    validated = _schedule_parse(schedule)
    floor = settings.JOB_MIN_INTERVAL_SECONDS
    if validated and owner is not None and not runs_everyones_work(owner) and schedule_shortest_interval(validated) < floor:
        raise JobsError(f"schedule runs more often than every {floor} s, the shortest interval allowed "
                        "(JOB_MIN_INTERVAL_SECONDS).", field="schedule")
    return validated


def _schedule_parse(schedule: Any) -> dict | None:
    if schedule in (None, {}):
        return None
    if not isinstance(schedule, dict):
        raise JobsError('schedule must be {"crontab": "m h dom mon dow", "timezone": …} or {"every_seconds": N}.',
                        field="schedule")
    if "crontab" in schedule and "every_seconds" in schedule:
        raise JobsError('schedule takes "crontab" or "every_seconds", not both.', field="schedule")
    if "crontab" in schedule:
        parts = str(schedule["crontab"]).split()
        if len(parts) != 5:
            raise JobsError("schedule.crontab needs five fields: minute hour day-of-month month day-of-week.",
                            field="schedule")
        from celery.schedules import crontab

        try:
            crontab(*parts)
        except Exception as exc:
            raise JobsError(f"schedule.crontab is not valid: {exc}", field="schedule")
        tz = schedule.get("timezone", "UTC")
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(tz)
        except Exception:
            raise JobsError(f"schedule.timezone {tz!r} is not a known time zone.", field="schedule")
        return {"crontab": " ".join(parts), "timezone": tz}
    if "every_seconds" in schedule:
        every = schedule["every_seconds"]
        if not isinstance(every, int) or isinstance(every, bool) or not 1 <= every <= SCHEDULE_MAX_EVERY_SECONDS:
            raise JobsError(f"schedule.every_seconds must be a whole number of seconds from 1 to "
                            f"{SCHEDULE_MAX_EVERY_SECONDS}.", field="schedule")
        return {"every_seconds": every}
    raise JobsError('schedule needs "crontab" or "every_seconds".', field="schedule")


def _periodic_name(job: Job) -> str:
    # Beat's names are unique across everyone; job names only per owner.
    return f"job {job.id}: {job.name}"[:JOB_NAME_MAX_LENGTH]


def _periodic_task_sync(*, job: Job) -> None:
    """Mirror the job's schedule into django-celery-beat; beat notices the change on its next tick."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    if not job.schedule:
        if job.periodic_task_id:
            PeriodicTask.objects.filter(id=job.periodic_task_id).delete()
            Job.objects.filter(id=job.id).update(periodic_task=None)
            job.periodic_task = None
        return
    fields: dict[str, Any] = {"interval": None, "crontab": None}
    if "crontab" in job.schedule:
        minute, hour, day_of_month, month_of_year, day_of_week = job.schedule["crontab"].split()
        fields["crontab"], _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
            day_of_week=day_of_week, timezone=job.schedule.get("timezone", "UTC"),
        )
    else:
        fields["interval"], _ = IntervalSchedule.objects.get_or_create(
            every=job.schedule["every_seconds"], period=IntervalSchedule.SECONDS
        )
    values = dict(task=TRIGGER_TASK, kwargs=json.dumps({"job_id": job.id}), enabled=job.enabled,
                  queue=Queue.MAINTENANCE, description=f"Runs job {job.name!r} ({job.kind})", **fields)
    if job.periodic_task_id:
        periodic = PeriodicTask.objects.get(id=job.periodic_task_id)
        for key, value in values.items():
            setattr(periodic, key, value)
        periodic.name = _periodic_name(job)
        periodic.save()
    else:
        periodic = PeriodicTask.objects.create(name=_periodic_name(job), **values)
        Job.objects.filter(id=job.id).update(periodic_task=periodic)
        job.periodic_task = periodic


def _kind_allowed(*, kind: str, user) -> None:
    """Staff-only kinds (work on everyone's data) are checked for whoever acts, every time: a user
    demoted from staff, or who lost the permission, can no longer edit or run the job they once
    defined. They take an operator: staff with the permission to change jobs. None is the system."""
    spec = kind_get(kind)
    if spec.staff_only and user is not None and not runs_everyones_work(user):
        raise JobsError(f"Kind {kind!r} works on everyone's data; only staff with the permission to change jobs "
                        "may define or run it.", code=ErrorCode.FORBIDDEN, field="kind")


def _owner_present(*, kind: str, owner) -> None:
    if kind_get(kind).owner_required and owner is None:
        raise JobsError(f"Kind {kind!r} works on its owner's data (their documents): a job of it needs an owner.",
                        field="owner")


def _name_free(*, name: str, owner, exclude_id: int | None = None) -> None:
    # Unique per owner: another user's job names are none of this user's business.
    taken = Job.objects.filter(name=name, owner=owner).exclude(id=exclude_id)
    if taken.exists():
        raise JobsError(f"You already have a job named {name!r}.", field="name")


def job_validate(*, name: str, kind: str, params: Any, schedule: Any, owner, actor=None,
                 job: Job | None = None, refused: dict[str, list[str]] | None = None) -> dict:
    """Check a definition as saving it would: the kind may be a job and `actor` may use it, params
    fit its schema, the schedule parses and is not too frequent, the name is free. Returns the
    cleaned params and schedule; else one JobsError naming every problem on its field. Inputs the
    caller `refused` already (a serializer's or a form's field errors) are not checked again, and
    their problems are named with the rest."""
    actor = actor if actor is not None else owner
    problems = Problems(refused)
    spec = None
    if "kind" not in problems.by_field:
        with problems.checking("kind"):
            spec = kind_get(kind)
            if not spec.schedulable:
                spec = None
                raise JobsError(f"Kind {kind!r} runs only for its own objects and cannot be a job.", field="kind")
            _kind_allowed(kind=kind, user=actor)
    cleaned: dict[str, Any] = {"params": params, "schedule": None}
    if spec is not None:
        if "owner" not in problems.by_field:
            with problems.checking("owner"):
                _owner_present(kind=kind, owner=owner)
        if "params" not in problems.by_field:
            with problems.checking("params"):
                cleaned["params"] = spec.validate_params(params if params is not None else {})
    if "schedule" not in problems.by_field:
        with problems.checking("schedule"):
            cleaned["schedule"] = _schedule_validate(schedule, owner=actor)
    if "name" not in problems.by_field:
        with problems.checking("name"):
            _name_free(name=name, owner=owner, exclude_id=job.id if job else None)
    problems.raise_any(JobsError)
    return cleaned


def job_create(*, name: str, kind: str, params: dict | None = None, schedule: dict | None = None,
               enabled: bool = True, owner=None, actor=None, refused: dict[str, list[str]] | None = None) -> Job:
    cleaned = job_validate(name=name, kind=kind, params=params, schedule=schedule, owner=owner, actor=actor,
                           refused=refused)
    with transaction.atomic():
        job = Job.objects.create(name=name, kind=kind, enabled=enabled, owner=owner, **cleaned)
        _periodic_task_sync(job=job)
    return job


JOB_UPDATABLE_FIELDS = ("name", "params", "schedule", "enabled")


def job_update(*, job: Job, data: dict[str, Any], actor=None, refused: dict[str, list[str]] | None = None) -> Job:
    """Change what `data` names; every problem of it at once (with those the caller `refused`)."""
    spec = kind_get(job.kind)
    _kind_allowed(kind=job.kind, user=actor)
    problems = Problems(refused)
    if "params" in data:
        with problems.checking("params"):
            data["params"] = spec.validate_params(data["params"])
    if "schedule" in data:
        with problems.checking("schedule"):
            data["schedule"] = _schedule_validate(data["schedule"], owner=actor if actor is not None else job.owner)
    if "name" in data:
        with problems.checking("name"):
            _name_free(name=data["name"], owner=job.owner, exclude_id=job.id)
    problems.raise_any(JobsError)
    with transaction.atomic():
        for key in JOB_UPDATABLE_FIELDS:
            if key in data:
                setattr(job, key, data[key])
        job.save()
        _periodic_task_sync(job=job)
    return job


def job_delete(*, job: Job) -> None:
    from django_celery_beat.models import PeriodicTask

    with transaction.atomic():
        if job.periodic_task_id:
            PeriodicTask.objects.filter(id=job.periodic_task_id).delete()
        job.delete()


def job_rights_enforce(*, job: Job) -> str | None:
    """Undo what the job's owner may no longer have it do (they are not an operator, or no longer;
    or their account is deactivated): a deactivated owner's job is disabled; a staff-only kind is
    disabled; a schedule faster than JOB_MIN_INTERVAL_SECONDS is slowed to it (an interval) or
    disabled (a crontab, which cannot be slowed without changing its meaning). Recorded in the
    admin's history of the job and logged. Returns what changed, or None."""
    owner = job.owner
    if owner is None or not job.enabled or (owner.is_active and runs_everyones_work(owner)):
        return None
    floor = settings.JOB_MIN_INTERVAL_SECONDS
    if not owner.is_active:
        job.enabled, change = False, "Disabled: its owner's account is deactivated."
    elif kind_get(job.kind).staff_only:
        job.enabled, change = False, f"Disabled: kind {job.kind!r} is staff-only and its owner is not staff."
    elif job.schedule and schedule_shortest_interval(job.schedule) < floor:
        if "every_seconds" in job.schedule:
            job.schedule = {"every_seconds": math.ceil(floor)}
            change = f"Slowed to every {math.ceil(floor)} s (JOB_MIN_INTERVAL_SECONDS): its owner is not staff."
        else:
            job.enabled = False
            change = (f"Disabled: its crontab fires more often than every {floor} s (JOB_MIN_INTERVAL_SECONDS) "
                      "and its owner is not staff.")
    else:
        return None
    from django.contrib.admin.models import CHANGE, LogEntry

    with transaction.atomic():
        job.save(update_fields=["enabled", "schedule"])
        _periodic_task_sync(job=job)
        # The admin's history names a user; no operator acted, so the entry is the owner's job's own.
        LogEntry.objects.log_actions(user_id=owner.pk, queryset=[job], action_flag=CHANGE, change_message=change,
                                     single_object=True)
    logger.warning("job changed: its owner's rights no longer allow it",
                   extra={"job_id": job.id, "owner_id": owner.pk, "change": change})
    return change


def jobs_rights_enforce(*, owner) -> list[str]:
    """job_rights_enforce for every job of `owner`, at once (a user just demoted from staff)."""
    return [change for job in Job.objects.filter(owner=owner, enabled=True)
            if (change := job_rights_enforce(job=job)) is not None]


def job_trigger(*, job: Job, triggered_by: str, params: dict | None = None, actor=None) -> JobRun:
    """A run of the job now. The run is the job's owner's, whoever starts it (an operator's "Run
    now" on alice's job makes a run alice sees, with her digest pointing at it); the rights checked
    are the `actor`'s (the job's owner when beat fires it). A firing of beat is checked against the
    owner's rights as they are now, not as they were when the schedule was saved."""
    if triggered_by == TriggeredBy.SCHEDULE and (change := job_rights_enforce(job=job)) is not None:
        raise JobsError(f"Job {job.name!r} was not run. {change}", code=ErrorCode.FORBIDDEN)
    spec = kind_get(job.kind)
    _kind_allowed(kind=job.kind, user=actor or job.owner)
    _owner_present(kind=job.kind, owner=job.owner)
    merged = {**job.params, **(params or {})}
    spec.validate_params(merged)
    return run_enqueue(kind=job.kind, args=merged, owner=job.owner, triggered_by=triggered_by, job=job,
                       started_by=actor)


def schedules_seed() -> list[str]:
    """Create a job for every kind that declares a default schedule, unless a job of that name exists.

    Seeding never touches an existing job, so an admin's edit (or disabling) survives every `make run`."""
    from jobs.registry import kinds_all

    created = []
    for spec in kinds_all():
        if spec.default_schedule is None:
            continue
        name, schedule = spec.default_schedule
        if Job.objects.filter(name=name, owner=None).exists():
            continue
        job_create(name=name, kind=spec.kind, schedule=schedule)
        created.append(name)
    return created


@receiver(pre_save, sender=settings.AUTH_USER_MODEL)
def _staff_before_save(sender, instance, update_fields=None, **kwargs):
    if update_fields is not None and not {"is_staff", "is_active"} & set(update_fields):
        return  # a login's last_login, and the like: rights unchanged
    instance._was_staff = bool(instance.pk) and sender.objects.filter(pk=instance.pk, is_staff=True).exists()
    instance._was_active = bool(instance.pk) and sender.objects.filter(pk=instance.pk, is_active=True).exists()


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def _demoted_owner_loses_staff_schedules(sender, instance, **kwargs):
    """Demoted from staff: their staff-only and too-fast schedules stop or slow in the same
    transaction, not at their next edit."""
    if (getattr(instance, "_was_staff", False) and not instance.is_staff) or \
            (getattr(instance, "_was_active", False) and not instance.is_active):
        jobs_rights_enforce(owner=instance)
