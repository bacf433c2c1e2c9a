"""The job platform's own kinds and housekeeping tasks. Each body is thin: it calls one service."""

from __future__ import annotations

import logging
import socket

from celery import shared_task

from jobs.constants import Queue
from jobs.errors import JobsError
from jobs.registry import RetryPolicy
from jobs.runner import tracked_task
from jobs.services import definitions, maintenance, steering

logger = logging.getLogger(__name__)

MAINTENANCE_RETRY = RetryPolicy(retries=2, backoff=2.0, backoff_max=30)
WATCHDOG_TASK = "jobs.watchdog"


@tracked_task(kind="jobs.ping", queue=Queue.JOBS, description="Answers pong from the worker that ran it; in a chain, "
              "echoes the result before it.",
              params_schema={"type": "object", "properties": {
                  "echo": {"type": "string", "maxLength": 200},
                  "previous": {"description": "The result of the run before it in a chain (jobs.calls)."}},
                  "additionalProperties": False})
def ping(ctx, echo: str = "pong", previous=None):
    return {"echo": echo if previous is None else previous, "worker": socket.gethostname()}


@tracked_task(kind="jobs.test_celery", queue=Queue.JOBS, description="Says Celery is configured and working, from the "
              "worker that ran it: `test_celery.delay().get(timeout=30)`.", schedulable=False)
def test_celery(ctx):
    return {"status": "success", "message": "Celery is configured and working properly!", "worker": ctx.worker}


_RETENTION_SCHEMA = {
    "type": "object",
    "properties": {"older_than_days": {"type": "integer", "minimum": 0}},
    "additionalProperties": False,
}


@tracked_task(kind="jobs.cleanup_results", queue=Queue.MAINTENANCE, retry=MAINTENANCE_RETRY, staff_only=True,
              default_schedule=("Clean up task results", {"crontab": "15 3 * * *", "timezone": "UTC"}),
              params_schema=_RETENTION_SCHEMA,
              description="Deletes django-celery-results rows older than the retention, in batches.")
def cleanup_results(ctx, older_than_days: int | None = None):
    return maintenance.results_cleanup(older_than_days=older_than_days)


@tracked_task(kind="jobs.cleanup_runs", queue=Queue.MAINTENANCE, retry=MAINTENANCE_RETRY, staff_only=True,
              default_schedule=("Clean up old runs", {"crontab": "30 3 * * *", "timezone": "UTC"}),
              params_schema={"type": "object", "properties": {
                  "older_than_days": {"type": "integer", "minimum": 0},
                  "dead_older_than_days": {"type": "integer", "minimum": 0}}, "additionalProperties": False},
              description="Deletes finished runs older than the retention (dead ones kept longer), in batches, "
                          "yielding its worker every minute.")
def cleanup_runs(ctx, older_than_days: int | None = None, dead_older_than_days: int | None = None):
    return maintenance.runs_cleanup(older_than_days=older_than_days, dead_older_than_days=dead_older_than_days,
                                    ctx=ctx)


# Housekeeping is plain Celery tasks, not runs: see maintenance.watchdog for why.

# No task events: every WATCHDOG_INTERVAL_SECONDS, it filled half of Flower's task list.
@shared_task(name=WATCHDOG_TASK, queue=Queue.MAINTENANCE, ignore_result=True, expires=60, send_events=False)
def watchdog():
    """Re-queues runs whose worker died, terminates cancelled runs past their grace, publishes lost messages."""
    return maintenance.watchdog()


@shared_task(name=steering.CANCEL_ENFORCE_TASK, queue=Queue.MAINTENANCE, ignore_result=True)
def enforce_cancel(run_id: str):
    """Terminates a cancelled run that is still running once its grace has passed."""
    return steering.runs_enforce_cancel(run_id=run_id)


@shared_task(name=definitions.TRIGGER_TASK, queue=Queue.MAINTENANCE, ignore_result=True)
def trigger_job(job_id: int):
    """Beat's entry point for a scheduled job: records a run and publishes it."""
    from jobs.models import Job, TriggeredBy

    job = Job.objects.filter(id=job_id, enabled=True).first()
    if job is None:
        return None
    try:
        return str(definitions.job_trigger(job=job, triggered_by=TriggeredBy.SCHEDULE).id)
    except JobsError as exc:  # refused as the owner's rights are now: logged, nothing to retry
        logger.warning("scheduled job refused", extra={"job_id": job_id, "reason": exc.message})
        return None
