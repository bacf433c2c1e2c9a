"""The job platform's own kinds. Each body is thin: it calls one service."""

from __future__ import annotations

import socket

from celery import shared_task

from jobs import services
from jobs.registry import RetryPolicy, tracked_task

MAINTENANCE_RETRY = RetryPolicy(retries=2, backoff=2.0, backoff_max=30)


@tracked_task(kind="jobs.ping", queue="jobs", description="Answers pong from the worker that ran it.",
              params_schema={"type": "object", "properties": {"echo": {"type": "string", "maxLength": 200}},
                             "additionalProperties": False})
def ping(run, echo: str = "pong"):
    return {"echo": echo, "worker": socket.gethostname()}


@tracked_task(kind="jobs.dispatch_pending", queue="maintenance", retry=MAINTENANCE_RETRY, staff_only=True,
              default_schedule=("Dispatch pending runs", {"every_seconds": 30}),
              description="Publishes runs that were accepted while the broker was unreachable.")
def dispatch_pending(run):
    return services.runs_dispatch_pending()


@tracked_task(kind="jobs.reap_stale_runs", queue="maintenance", retry=MAINTENANCE_RETRY, staff_only=True,
              default_schedule=("Reap stale runs", {"every_seconds": 60}),
              description="Re-queues or fails runs whose worker stopped sending heartbeats.")
def reap_stale_runs(run):
    return services.runs_reap_stale()


_RETENTION_SCHEMA = {
    "type": "object",
    "properties": {"older_than_days": {"type": "integer", "minimum": 0}},
    "additionalProperties": False,
}


@tracked_task(kind="jobs.cleanup_results", queue="maintenance", retry=MAINTENANCE_RETRY, staff_only=True,
              default_schedule=("Clean up task results", {"crontab": "15 3 * * *", "timezone": "UTC"}),
              params_schema=_RETENTION_SCHEMA,
              description="Deletes django-celery-results rows older than the retention, in batches.")
def cleanup_results(run, older_than_days: int | None = None):
    return services.results_cleanup(older_than_days=older_than_days)


@tracked_task(kind="jobs.cleanup_runs", queue="maintenance", retry=MAINTENANCE_RETRY, staff_only=True,
              default_schedule=("Clean up old runs", {"crontab": "30 3 * * *", "timezone": "UTC"}),
              params_schema={"type": "object", "properties": {
                  "older_than_days": {"type": "integer", "minimum": 0},
                  "dead_older_than_days": {"type": "integer", "minimum": 0}}, "additionalProperties": False},
              description="Deletes finished runs older than the retention (dead ones kept longer), in batches.")
def cleanup_runs(run, older_than_days: int | None = None, dead_older_than_days: int | None = None):
    return services.runs_cleanup(older_than_days=older_than_days, dead_older_than_days=dead_older_than_days)


@shared_task(name=services.TRIGGER_TASK, queue="maintenance", ignore_result=True)
def trigger_job(job_id: int):
    """Beat's entry point for a scheduled job: records a run and publishes it."""
    from jobs.models import Job, TriggeredBy

    job = Job.objects.filter(id=job_id, enabled=True).first()
    if job is None:
        return None
    return str(services.job_trigger(job=job, triggered_by=TriggeredBy.SCHEDULE).id)
