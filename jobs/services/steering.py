"""Steering runs: a durable cancel (and its enforcement after the grace), force-failing a stalled
run, and retries that link the new run to the one it retries."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from core.clock import database_now
from core.errors import ErrorCode
from jobs import broker, lifecycle
from jobs.constants import Queue
from jobs.errors import JobsError
from jobs.models import RUNNING_STATUSES, UNFINISHED_STATUSES, JobRun, RunStatus, TriggeredBy
from jobs.services.runs import DISPATCH_BATCH_SIZE, run_enqueue

logger = logging.getLogger(__name__)

CANCEL_ENFORCE_TASK = "jobs.enforce_cancel"


def run_cancel(*, run: JobRun) -> JobRun:
    """Durable cancel: flag in the database first, then revoke.

    A waiting run is REVOKED at once and never executes, whenever its message arrives. A running
    one stops at its next progress report, its final writes are refused, and if it is still running
    CANCEL_GRACE_SECONDS later its worker process is terminated.
    """
    status = lifecycle.run_request_cancel(run_id=str(run.id))
    if status is None:
        run.refresh_from_db()
        raise JobsError(f"Run {run.id} already finished ({run.status}); nothing to cancel.", code=ErrorCode.CONFLICT)
    _revoke_broadcast(run_id=str(run.id), status=status)
    # Its children go with it (the parent first: no child ending meanwhile can queue its final step).
    for child in JobRun.objects.filter(parent_id=run.id, status__in=UNFINISHED_STATUSES):
        child_status = lifecycle.run_request_cancel(run_id=str(child.id))
        if child_status is not None:
            _revoke_broadcast(run_id=str(child.id), status=child_status)
    run.refresh_from_db()
    return run


def runs_cancel_requested_through_celery(*, run_ids: list[str]) -> int:
    """The durable cancel of the runs among `run_ids` (Celery's revoke names task ids, of runs or
    not), and of their children, without a broadcast: Celery's revoke is the broadcast. Ids of no
    run, and runs already ended, are left alone, as Celery's revoke of an ended task does nothing.
    Returns how many runs it flagged."""
    ids = []
    for value in run_ids:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue  # a plain Celery task's id that is no UUID
    flagged = 0
    for run_id in JobRun.objects.filter(id__in=ids, status__in=UNFINISHED_STATUSES).values_list("id", flat=True):
        for target in [run_id, *JobRun.objects.filter(parent_id=run_id, status__in=UNFINISHED_STATUSES)
                       .values_list("id", flat=True)]:
            flagged += lifecycle.run_request_cancel(run_id=str(target)) is not None
    if flagged:
        logger.info("runs cancelled through Celery's revoke", extra={"runs": flagged})
    return flagged


def _revoke_broadcast(*, run_id: str, status: str) -> None:
    try:
        broker.run_revoke_broadcast(run_id=run_id)
        if status in RUNNING_STATUSES:
            broker.task_send_later(task_name=CANCEL_ENFORCE_TASK, kwargs={"run_id": run_id}, queue=Queue.MAINTENANCE,
                                   countdown=settings.CANCEL_GRACE_SECONDS)
    except Exception as exc:
        # The database flag is what counts; the watchdog enforces the grace if this message is lost.
        logger.warning("revoke broadcast failed", extra={"run_id": run_id, "cause": str(exc)})


def runs_enforce_cancel(*, run_id: str | None = None) -> int:
    """Terminate runs still running CANCEL_GRACE_SECONDS after their cancel (one run, or all
    overdue ones), and end them REVOKED. Returns how many were terminated."""
    overdue = JobRun.objects.filter(status__in=RUNNING_STATUSES, cancel_requested=True,
                                    cancel_requested_at__lte=database_now()
                                    - timedelta(seconds=settings.CANCEL_GRACE_SECONDS * 0.9))
    if run_id is not None:
        overdue = overdue.filter(id=run_id)
    terminated = 0
    for run in overdue[:DISPATCH_BATCH_SIZE]:
        # The run ends REVOKED first, then its process is terminated: a run that ended meanwhile is
        # left alone, and the worker's own report of the termination finds the run already ended
        # (terminating first, that report could end it before this did, unexplained).
        if not lifecycle.run_revoke(run_id=str(run.id), reason=f"terminated {settings.CANCEL_GRACE_SECONDS} s after "
                                                               "its cancel"):
            continue
        try:
            broker.run_revoke_broadcast(run_id=str(run.id), terminate=True)
        except Exception as exc:
            logger.warning("terminate broadcast failed", extra={"run_id": str(run.id), "cause": str(exc)})
        terminated += 1
        logger.warning("run ignored its cancel; terminated", extra={"run_id": str(run.id), "kind": run.kind})
    return terminated


def run_force_fail(*, run: JobRun, actor) -> JobRun:
    """End a stalled run FAILURE (dead) now, instead of waiting for the watchdog to take it over;
    its worker process, if it still lives, is terminated so it cannot write after the fact."""
    run.refresh_from_db()
    if not run.stalled:
        raise JobsError(f"Run {run.id} is {run.status} and not stalled; cancel it instead.", code=ErrorCode.CONFLICT)
    try:
        broker.run_revoke_broadcast(run_id=str(run.id), terminate=True)
    except Exception as exc:
        logger.warning("terminate broadcast failed", extra={"run_id": str(run.id), "cause": str(exc)})
    lifecycle.run_fail(run_id=str(run.id), error=f"force-failed by {actor} while stalled", attempt=run.attempts,
                       event="force-failed", only_if_heartbeat=run.heartbeat_at)
    run.refresh_from_db()
    return run


def run_retry(*, run: JobRun, triggered_by: str, owner=None) -> tuple[JobRun, bool]:
    """A new run with the same kind and args, linked by retry_of. Exactly one however often and
    however concurrently it is asked: later askers get that run back. Returns (run, created).

    A run that fanned out finds its retry_of in its body, and re-runs only the children that did
    not succeed (research.digest); a partial SUCCESS (`result.partial`) is retried that way too."""
    with transaction.atomic():
        locked = JobRun.objects.select_for_update().get(id=run.id)
        existing = locked.retries.order_by("created_at").first()
        if existing is not None:
            return existing, False
        if not locked.is_retryable:
            raise JobsError(f"Only FAILURE, REVOKED or partial runs can be retried; run {run.id} is {locked.status}.",
                            code=ErrorCode.CONFLICT)
        # The retry is the failed run's owner's, whoever asks for it (staff retrying a user's run).
        # A chain member's retry carries on its chain once it succeeds.
        new_run = run_enqueue(kind=locked.kind, args=locked.args, owner=locked.owner or owner,
                              triggered_by=triggered_by, job=locked.job, parent=locked.parent, retry_of=locked,
                              queue=locked.queue, started_by=owner, continuation=locked.continuation)
    return new_run, True


def runs_retry_failed(*, kind: str | None = None, since=None, dry_run: bool = False,
                      triggered_by: str = TriggeredBy.SHELL) -> list[JobRun]:
    """Retry every dead run (optionally of one kind, since a time) that has not been retried yet.
    Returns the new runs (or, with dry_run, the dead ones)."""
    runs = JobRun.objects.dead_letters().filter(status=RunStatus.FAILURE)
    if kind:
        runs = runs.filter(kind=kind)
    if since:
        runs = runs.filter(created_at__gte=since)
    runs = list(runs.order_by("created_at"))
    if dry_run:
        return runs
    created = []
    for dead in runs:
        new_run, made = run_retry(run=dead, triggered_by=triggered_by)
        if made:
            created.append(new_run)
    return created
