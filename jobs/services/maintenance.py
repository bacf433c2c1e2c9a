"""The watchdog (recovery that needs no operator) and the cleanup of old runs and results."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from jobs import lifecycle
from jobs.models import FINISHED_STATUSES, JobRun
from jobs.services.runs import runs_dispatch_pending, runs_enforce_cancel, runs_resume_parents

logger = logging.getLogger(__name__)

# Maintenance works in batches so one statement never holds locks on, or loads, a whole table.
CLEANUP_BATCH_SIZE = 1000
# Runs examined per reaper pass; the next pass, seconds later, takes the rest.
REAP_BATCH_SIZE = 200


def runs_reap_stale() -> dict[str, int]:
    """Runs whose worker stopped heartbeating (its process is gone, paused or cut off): re-queued and
    published ahead of fresh work while attempts remain, else failed and dead (with the kind's
    final-failure hook). A worker that wakes later holds no lease and writes nothing."""
    from jobs.services.runs import run_dispatch

    outcomes = {"requeued": 0, "failed": 0, "revoked": 0}
    for run in lifecycle.runs_stale(limit=REAP_BATCH_SIZE):
        status = lifecycle.run_reap(run=run)
        if status == "QUEUED":
            run_dispatch(run=run, force=True, resume=True)
            outcomes["requeued"] += 1
        elif status == "FAILURE":
            outcomes["failed"] += 1
        elif status == "REVOKED":
            outcomes["revoked"] += 1
    if any(outcomes.values()):
        logger.warning("reaper found runs whose worker was lost", extra=outcomes)
    return outcomes


def watchdog() -> dict[str, int]:
    """One pass of recovery, every WATCHDOG_INTERVAL_SECONDS from beat: runs whose worker died,
    cancels a body ignored past the grace, messages that never reached (or vanished from) the broker,
    parents whose last child's end was not announced.

    Not recorded as runs: a pass that finds nothing is most passes, and would bury real work in
    the runs list. What it does is logged with its timing."""
    started = time.monotonic()
    reaped = runs_reap_stale()
    terminated = runs_enforce_cancel()
    dispatched = runs_dispatch_pending()
    resumed = runs_resume_parents()
    outcome = {**reaped, "terminated": terminated, "published": dispatched["published"], "resumed": resumed}
    if any(outcome.values()):
        logger.info("watchdog pass", extra={**outcome, "seconds": round(time.monotonic() - started, 3)})
    return outcome


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
