"""Writes of the job platform: accepting, dispatching, finishing, cancelling and retrying runs,
maintenance, and job definitions kept in sync with beat."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from jobs.errors import JobsError
from jobs.models import FINISHED_STATUSES, WAITING_STATUSES, Job, JobRun, RunStatus, TriggeredBy
from jobs.registry import JobKind, kind_get
from project.logging import correlation_id_get

logger = logging.getLogger(__name__)

# Maintenance works in batches so one statement never holds locks on, or loads, a whole table.
CLEANUP_BATCH_SIZE = 1000
# Publishing is one round trip per run; a bounded batch keeps one beat tick short.
DISPATCH_BATCH_SIZE = 500
# Runs examined per reaper pass; the next pass, a minute later, takes the rest.
REAP_BATCH_SIZE = 200


# --- Accepting and dispatching --------------------------------------------------------

def run_enqueue(
    *,
    kind: str,
    args: dict[str, Any] | None = None,
    owner=None,
    triggered_by: str = TriggeredBy.SYSTEM,
    job: Job | None = None,
    parent: JobRun | None = None,
    retry_of: JobRun | None = None,
    queue: str | None = None,
) -> JobRun:
    """Record a run (QUEUED) and publish it once the surrounding transaction commits.

    If the broker is down the run stays QUEUED with no dispatch time, and `runs_dispatch_pending`
    publishes it later: an accepted run is never lost.
    """
    spec = kind_get(kind)
    run = JobRun.objects.create(
        kind=kind,
        queue=queue or spec.queue,
        args=args or {},
        owner=owner,
        triggered_by=triggered_by,
        job=job,
        parent=parent,
        retry_of=retry_of,
        max_attempts=spec.retry.max_attempts,
        time_limit=spec.hard_limit,
        correlation_id=correlation_id_get() or "",
        # Optimistic: set now to save a write per run; cleared if publishing fails.
        dispatched_at=timezone.now(),
    )
    transaction.on_commit(lambda: run_dispatch(run=run))
    return run


def run_dispatch(*, run: JobRun) -> bool:
    """Publish the run's message. Returns False (and marks it undispatched) if the broker is unreachable."""
    from project.celery import CORRELATION_HEADER, app

    try:
        app.send_task(
            run.kind,
            kwargs={"run_id": str(run.id)},
            task_id=str(run.id),
            queue=run.queue,
            headers={CORRELATION_HEADER: run.correlation_id} if run.correlation_id else None,
            retry=False,
        )
    except Exception as exc:  # kombu raises several types for an unreachable broker
        JobRun.objects.filter(id=run.id, status__in=WAITING_STATUSES).update(dispatched_at=None)
        logger.warning("broker unreachable; run left for dispatch_pending",
                       extra={"run_id": str(run.id), "kind": run.kind, "cause": f"{type(exc).__name__}: {exc}"})
        return False
    return True


def runs_dispatch_pending() -> dict[str, int]:
    """Publish runs that were accepted but never reached the broker, or were lost before a worker saw them:
    QUEUED runs never published (or published long ago), and RETRY runs long past their countdown
    (their retry message was never published, e.g. the broker was down when the attempt failed)."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.RUN_REDISPATCH_AFTER_SECONDS)
    overdue_retry_before = stale_before - timedelta(seconds=settings.MAX_RETRY_COUNTDOWN)
    pending = list(
        JobRun.objects.filter(cancel_requested=False)
        .filter(Q(status=RunStatus.QUEUED, dispatched_at__isnull=True)
                | Q(status=RunStatus.QUEUED, dispatched_at__lt=stale_before)
                | Q(status=RunStatus.RETRY, heartbeat_at__lt=overdue_retry_before))
        .order_by("created_at")[:DISPATCH_BATCH_SIZE]
    )
    published = 0
    for run in pending:
        JobRun.objects.filter(id=run.id).update(dispatched_at=timezone.now())
        if not run_dispatch(run=run):
            break
        published += 1
    if pending:
        logger.info("dispatch_pending published runs", extra={"published": published, "found": len(pending)})
    return {"found": len(pending), "published": published}


# --- Outcomes (called by the runner) ------------------------------------------------

def run_mark_success(*, run_id: str, result: Any) -> None:
    # Raw SQL, as the claim: this runs once per task on the hot path, and the ORM's query building
    # costs as much as the statement itself.
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE jobs_jobrun SET status = 'SUCCESS', result = %s::jsonb, finished_at = %s, heartbeat_at = %s,"
            " error = '', eta_seconds = 0 WHERE id = %s AND status NOT IN ('SUCCESS', 'FAILURE', 'REVOKED')",
            [None if result is None else _json(result), now, now, run_id],
        )


def run_mark_retry(*, run_id: str, attempt: int, error: str, delay: float) -> None:
    now = timezone.now()
    entry = {"attempt": attempt, "error": error[:500], "delay": round(delay, 3), "at": now.isoformat()}
    with connection.cursor() as cursor:
        _attempt_log_append(cursor, run_id=run_id, entry=entry,
                            set_sql="status = 'RETRY', error = %s, heartbeat_at = %s, ", params=[error, now],
                            where_sql=" AND status IN ('STARTED', 'PROGRESS')")


def run_fail_final(*, run_id: str, spec: JobKind, error: str, traceback: str = "", exc: BaseException | None = None,
                   attempt: int | None = None) -> bool:
    """End the run FAILURE and dead; call the kind's on_final_failure exactly once. Returns True if this call did.

    The status and the hook's writes (an apology, a failed document) commit together, so nobody
    sees a failed run without its consequence."""
    now = timezone.now()
    log_entry = {"attempt": attempt, "error": error[:500], "delay": None, "at": now.isoformat()}
    with transaction.atomic():
        changed = JobRun.objects.filter(id=run_id, dead=False).exclude(status__in=FINISHED_STATUSES).update(
            status=RunStatus.FAILURE, dead=True, error=error, traceback=traceback, finished_at=now,
            heartbeat_at=now,
        )
        if not changed:
            return False
        if attempt is not None:
            with connection.cursor() as cursor:
                _attempt_log_append(cursor, run_id=run_id, entry=log_entry)
        run = JobRun.objects.get(id=run_id)
        if spec.on_final_failure:
            try:
                with transaction.atomic():
                    spec.on_final_failure(run=run, **run.args)
            except Exception:
                logger.exception("on_final_failure hook raised", extra={"run_id": run_id, "kind": run.kind})
    logger.error("run failed for good", extra={
        "run_id": run_id, "kind": run.kind, "attempts": run.attempts, "max_attempts": run.max_attempts,
        "error": error, "owner_id": run.owner_id, "correlation_id": run.correlation_id,
    })
    if settings.SENTRY_DSN:
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            scope.set_tag("run_kind", run.kind)
            scope.set_context("run", {"id": run_id, "attempts": run.attempts, "args": run.args})
            if exc is not None:
                sentry_sdk.capture_exception(exc)
            else:
                sentry_sdk.capture_message(f"run {run_id} failed: {error}", level="error")
    return True


def run_mark_revoked(*, run_id: str, spec: JobKind | None = None) -> bool:
    with transaction.atomic():
        changed = JobRun.objects.filter(id=run_id).exclude(status__in=FINISHED_STATUSES).update(
            status=RunStatus.REVOKED, cancel_requested=True, finished_at=timezone.now(), eta_seconds=None,
        )
        if changed:
            run = JobRun.objects.get(id=run_id)
            spec = spec or kind_get(run.kind)
            if spec.on_revoked:
                spec.on_revoked(run=run, **run.args)
    return bool(changed)


def _json(value: Any) -> str:
    return json.dumps(value)


def _attempt_log_append(cursor, *, run_id: str, entry: dict, set_sql: str = "", params: list | None = None,
                        where_sql: str = "") -> None:
    """Append one entry to the run's attempt log in the same statement as any other change."""
    cursor.execute(
        f"UPDATE jobs_jobrun SET {set_sql}attempt_log = attempt_log || %s::jsonb WHERE id = %s{where_sql}",
        [*(params or []), _json([entry]), run_id],
    )


# --- Steering ---------------------------------------------------------------------

def run_cancel(*, run: JobRun) -> JobRun:
    """Durable cancel: flag in the database first, then revoke.

    A waiting run becomes REVOKED at once and never executes, whenever its message arrives;
    a running one stops at its next progress report.
    """
    if run.is_finished:
        raise JobsError(f"Run {run.id} already finished ({run.status}); nothing to cancel.", code="conflict")
    with transaction.atomic():
        JobRun.objects.filter(id=run.id).exclude(status__in=FINISHED_STATUSES).update(cancel_requested=True)
        if JobRun.objects.filter(id=run.id, status__in=WAITING_STATUSES).exists():
            run_mark_revoked(run_id=str(run.id))
    try:
        from project.celery import app

        app.control.revoke(str(run.id))
    except Exception as exc:
        # The database flag is what counts; a revoke lost to a broker outage changes nothing.
        logger.warning("revoke broadcast failed", extra={"run_id": str(run.id), "cause": str(exc)})
    run.refresh_from_db()
    return run


def run_retry(*, run: JobRun, triggered_by: str, owner=None) -> JobRun:
    """A new run with the same kind and args, linked to the failed or cancelled one by retry_of."""
    if run.status not in (RunStatus.FAILURE, RunStatus.REVOKED):
        raise JobsError(f"Only FAILURE or REVOKED runs can be retried; run {run.id} is {run.status}.",
                        code="conflict")
    with transaction.atomic():
        return run_enqueue(kind=run.kind, args=run.args, owner=run.owner or owner, triggered_by=triggered_by,
                           job=run.job, parent=run.parent, retry_of=run, queue=run.queue)


def runs_retry_failed(*, kind: str | None = None, since=None, dry_run: bool = False,
                      triggered_by: str = TriggeredBy.SHELL) -> list[JobRun]:
    """Retry every dead run (optionally of one kind, since a time) that has not been retried yet."""
    runs = JobRun.objects.filter(status=RunStatus.FAILURE, dead=True, retries__isnull=True)
    if kind:
        runs = runs.filter(kind=kind)
    if since:
        runs = runs.filter(created_at__gte=since)
    runs = list(runs.order_by("created_at"))
    if dry_run:
        return runs
    return [run_retry(run=run, triggered_by=triggered_by) for run in runs]


# --- Maintenance -----------------------------------------------------------------------

def runs_reap_stale() -> dict[str, int]:
    """Runs whose worker died: no heartbeat for longer than their hard limit plus a margin.

    Re-queued while attempts remain, else failed and dead (with the kind's final-failure hook).
    """
    now = timezone.now()
    margin = settings.RUN_REAP_MARGIN_SECONDS
    candidates = (
        JobRun.objects.filter(status__in=(RunStatus.STARTED, RunStatus.PROGRESS))
        .extra(where=["heartbeat_at < %s - (time_limit + %s) * interval '1 second'"], params=[now, margin])
        .order_by("heartbeat_at")[:REAP_BATCH_SIZE]
    )
    requeued = failed = 0
    for run in candidates:
        if run.cancel_requested:
            run_mark_revoked(run_id=str(run.id))
            continue
        if run.attempts < run.max_attempts:
            changed = JobRun.objects.filter(id=run.id, status=run.status, heartbeat_at=run.heartbeat_at).update(
                status=RunStatus.QUEUED, dispatched_at=now,
                error=f"worker lost during attempt {run.attempts}; re-queued by the reaper",
            )
            if changed:
                run.status = RunStatus.QUEUED
                run_dispatch(run=run)
                requeued += 1
        else:
            if run_fail_final(run_id=str(run.id), spec=kind_get(run.kind),
                              error=f"worker lost during the last attempt ({run.attempts}/{run.max_attempts})"):
                failed += 1
    if requeued or failed:
        logger.warning("reaper found stale runs", extra={"requeued": requeued, "failed": failed})
    return {"requeued": requeued, "failed": failed}


def _delete_in_batches(queryset, *, pk_field: str = "pk") -> int:
    deleted = 0
    while True:
        ids = list(queryset.values_list(pk_field, flat=True)[:CLEANUP_BATCH_SIZE])
        if not ids:
            return deleted
        queryset.model.objects.filter(**{f"{pk_field}__in": ids}).delete()
        deleted += len(ids)


def results_cleanup(*, older_than_days: int | None = None) -> dict[str, int]:
    from django_celery_results.models import GroupResult, TaskResult

    days = settings.RESULTS_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    tasks = _delete_in_batches(TaskResult.objects.filter(date_done__lt=cutoff))
    groups = _delete_in_batches(GroupResult.objects.filter(date_done__lt=cutoff))
    return {"task_results": tasks, "group_results": groups}


def runs_cleanup(*, older_than_days: int | None = None, dead_older_than_days: int | None = None) -> dict[str, int]:
    days = settings.RUNS_RETENTION_DAYS if older_than_days is None else older_than_days
    dead_days = settings.DEAD_RUNS_RETENTION_DAYS if dead_older_than_days is None else dead_older_than_days
    now = timezone.now()
    finished = JobRun.objects.filter(status__in=FINISHED_STATUSES)
    live = _delete_in_batches(finished.filter(dead=False, finished_at__lt=now - timedelta(days=days)))
    dead = _delete_in_batches(finished.filter(dead=True, finished_at__lt=now - timedelta(days=dead_days)))
    return {"runs": live, "dead_runs": dead}


# --- Job definitions and their beat schedules -------------------------------------------

TRIGGER_TASK = "jobs.trigger_job"


def _schedule_validate(schedule: Any) -> dict | None:
    if schedule in (None, {}):
        return None
    if not isinstance(schedule, dict):
        raise JobsError('schedule must be {"crontab": "m h dom mon dow", "timezone": …} or {"every_seconds": N}.',
                        field="schedule")
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
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise JobsError("schedule.every_seconds must be a whole number of seconds, 1 or more.", field="schedule")
        return {"every_seconds": every}
    raise JobsError('schedule needs "crontab" or "every_seconds".', field="schedule")


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
                  queue="maintenance", description=f"Runs job {job.name!r} ({job.kind})", **fields)
    if job.periodic_task_id:
        periodic = PeriodicTask.objects.get(id=job.periodic_task_id)
        for key, value in values.items():
            setattr(periodic, key, value)
        periodic.name = f"job:{job.name}"
        periodic.save()
    else:
        periodic = PeriodicTask.objects.create(name=f"job:{job.name}", **values)
        Job.objects.filter(id=job.id).update(periodic_task=periodic)
        job.periodic_task = periodic


def job_create(*, name: str, kind: str, params: dict | None = None, schedule: dict | None = None,
               enabled: bool = True, owner=None) -> Job:
    spec = kind_get(kind)
    if not spec.schedulable:
        raise JobsError(f"Kind {kind!r} runs only for its own objects and cannot be a job.", field="kind")
    if spec.staff_only and owner is not None and not owner.is_staff:
        raise JobsError(f"Kind {kind!r} works on everyone's data; only staff may define it as a job.", field="kind")
    params = spec.validate_params(params or {})
    schedule = _schedule_validate(schedule)
    if Job.objects.filter(name=name).exists():
        raise JobsError(f"A job named {name!r} already exists.", field="name")
    with transaction.atomic():
        job = Job.objects.create(name=name, kind=kind, params=params, schedule=schedule, enabled=enabled, owner=owner)
        _periodic_task_sync(job=job)
    return job


JOB_UPDATABLE_FIELDS = ("name", "params", "schedule", "enabled")


def job_update(*, job: Job, data: dict[str, Any]) -> Job:
    spec = kind_get(job.kind)
    if "params" in data:
        data["params"] = spec.validate_params(data["params"])
    if "schedule" in data:
        data["schedule"] = _schedule_validate(data["schedule"])
    if "name" in data and Job.objects.filter(name=data["name"]).exclude(id=job.id).exists():
        raise JobsError(f"A job named {data['name']!r} already exists.", field="name")
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


def job_trigger(*, job: Job, triggered_by: str, params: dict | None = None, owner=None) -> JobRun:
    spec = kind_get(job.kind)
    merged = {**job.params, **(params or {})}
    spec.validate_params(merged)
    with transaction.atomic():
        return run_enqueue(kind=job.kind, args=merged, owner=owner or job.owner, triggered_by=triggered_by, job=job)


def schedules_seed() -> list[str]:
    """Create a job for every kind that declares a default schedule, unless a job of that name exists.

    Seeding never touches an existing job, so an admin's edit (or disabling) survives every `make run`."""
    from jobs.registry import kinds_all

    created = []
    for spec in kinds_all():
        if spec.default_schedule is None:
            continue
        name, schedule = spec.default_schedule
        if Job.objects.filter(name=name).exists():
            continue
        job_create(name=name, kind=spec.kind, schedule=schedule)
        created.append(name)
    return created
