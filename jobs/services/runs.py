"""Accepting, publishing, cancelling and retrying runs."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Min, OuterRef, Q
from django.dispatch import receiver
from django.utils import timezone

from core.errors import ErrorCode
from core.logging import correlation_id_get
from jobs import broker, lifecycle
from jobs.constants import MAINTENANCE_QUEUE
from jobs.errors import JobsError
from jobs.models import FINISHED_STATUSES, RUNNING_STATUSES, UNFINISHED_STATUSES, Job, JobRun, RunStatus, TriggeredBy
from jobs.registry import kind_find, kind_get
from jobs.selectors import run_children_counts

logger = logging.getLogger(__name__)

# Publishing is one round trip per run; a bounded batch keeps one watchdog pass short.
DISPATCH_BATCH_SIZE = 500
CANCEL_ENFORCE_TASK = "jobs.enforce_cancel"
# Flower shows a task's kwargs as this text; ids and small params fit, a long param is cut.
KWARGS_REPR_CHARS = 300


# --- accepting and publishing ---------------------------------------------------------------

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

    If the broker is down the run stays QUEUED, undispatched, and the watchdog publishes it
    later: an accepted run is never lost.
    """
    spec = kind_get(kind)
    run = lifecycle.run_accept(
        kind=kind, queue=queue or spec.queue, args=args or {}, owner=owner, triggered_by=triggered_by, job=job,
        parent=parent, retry_of=retry_of, max_attempts=spec.retry.max_attempts, time_limit=spec.hard_limit,
        correlation_id=correlation_id_get() or "",
    )
    if (spec.fair_share and owner is not None and _published_unfinished(kind=kind, owner_id=owner.pk) > spec.fair_share) or \
            (spec.parent_share and parent is not None
             and _published_unfinished(kind=kind, parent_id=parent.pk) > spec.parent_share):
        # Waits its turn: published when one of this owner's (or this parent's) runs of this kind ends.
        lifecycle.run_dispatched(run_id=run.id, at=None)
        return run
    transaction.on_commit(lambda: run_dispatch(run=run))
    return run


def _published_unfinished(*, kind: str, owner_id: int | None = None, parent_id=None) -> int:
    """This owner's (or this parent's) runs of this kind that were published and have not ended."""
    scope = {"owner_id": owner_id} if parent_id is None else {"parent_id": parent_id}
    return JobRun.objects.filter(kind=kind, status__in=UNFINISHED_STATUSES, dispatched_at__isnull=False,
                                 **scope).count()


def runs_dispatch_waiting(*, kind: str, owner_id: int) -> int:
    """Publish this owner's oldest runs that wait their turn, up to the kind's fair share."""
    spec = kind_find(kind)
    if spec is None or not spec.fair_share:
        return 0
    free = spec.fair_share - _published_unfinished(kind=kind, owner_id=owner_id)
    waiting = list(JobRun.objects.filter(kind=kind, owner_id=owner_id, status=RunStatus.QUEUED, cancel_requested=False,
                                      dispatched_at__isnull=True).order_by("created_at")[:max(free, 0)])
    for run in waiting:
        lifecycle.run_dispatched(run_id=run.id, at=timezone.now())
        run_dispatch(run=run)
    return len(waiting)


def runs_dispatch_waiting_children(*, parent_id) -> int:
    """Publish the parent's oldest children that wait their turn, up to their kind's parent share.
    The parent's row is locked meanwhile, so children ending together never exceed the share, and
    nothing is published for a parent being cancelled."""
    with transaction.atomic():
        parent = JobRun.objects.select_for_update().filter(id=parent_id).first()
        if parent is None or parent.cancel_requested or parent.is_finished:
            return 0
        waiting = JobRun.objects.filter(parent_id=parent_id, status=RunStatus.QUEUED, cancel_requested=False,
                                     dispatched_at__isnull=True).order_by("created_at")
        first = waiting.first()
        spec = kind_find(first.kind) if first is not None else None
        if spec is None:
            return 0
        free = (spec.parent_share or len(waiting)) - _published_unfinished(kind=spec.kind, parent_id=parent_id)
        chosen = list(waiting[:max(free, 0)])
        for run in chosen:
            lifecycle.run_dispatched(run_id=run.id, at=timezone.now())
            transaction.on_commit(lambda run=run: run_dispatch(run=run))
    return len(chosen)


def run_children_progress(*, parent_id) -> bool:
    """A child of `parent_id` ended: publish the next waiting children, roll their progress up into
    the parent's, and, once none is unfinished, queue the parent for its final step (exactly once
    however many ends are announced, and in whatever order). True if this call queued the parent."""
    runs_dispatch_waiting_children(parent_id=parent_id)
    counts = run_children_counts(parent_id=parent_id)
    total = sum(counts.values())
    ended = sum(counts.get(status, 0) for status in FINISHED_STATUSES)
    eta = None
    first_start = JobRun.objects.filter(parent_id=parent_id).aggregate(first=Min("started_at"))["first"]
    if ended and first_start is not None and ended < total:
        elapsed = (timezone.now() - first_start).total_seconds()
        eta = round((total - ended) * elapsed / ended, 1)
    lifecycle.run_roll_up(run_id=parent_id, current=ended, total=total, eta=eta)
    if not lifecycle.run_children_done(run_id=parent_id):
        return False
    parent = JobRun.objects.get(id=parent_id)
    logger.info("children ended; parent queued for its final step",
                extra={"run_id": str(parent_id), "kind": parent.kind, "children": counts})
    run_dispatch(run=parent)
    return True


def runs_resume_parents() -> int:
    """Parents still awaiting children that have all ended (an announcement lost with its worker):
    queued for their final step. The watchdog's backstop; normally the last child does this."""
    unfinished = JobRun.objects.filter(parent_id=OuterRef("pk"), status__in=UNFINISHED_STATUSES)
    waiting = (JobRun.objects.filter(awaiting_children=True, status__in=RUNNING_STATUSES)
               .exclude(Exists(unfinished)).values_list("id", flat=True)[:DISPATCH_BATCH_SIZE])
    return sum(run_children_progress(parent_id=parent_id) for parent_id in list(waiting))


@receiver(lifecycle.run_ended)
def _after_run_ended(sender, run_id, parent_id, owner_id, kind, status, **kwargs):
    """What waited for a run that ended: its owner's next turn (fair-share kinds), its parent's next
    children and, after the last child, the parent's final step."""
    spec = kind_find(kind)
    if spec is not None and spec.fair_share and owner_id is not None:
        runs_dispatch_waiting(kind=kind, owner_id=owner_id)
    if parent_id is not None:
        run_children_progress(parent_id=parent_id)


def task_kwargs_repr(run: JobRun) -> str:
    about = {"run_id": str(run.id), **({"job_id": run.job_id} if run.job_id else {}), **(run.args or {})}
    text = repr(about)
    return text if len(text) <= KWARGS_REPR_CHARS else text[:KWARGS_REPR_CHARS - 1] + "…"


def run_dispatch(*, run: JobRun, force: bool = False, resume: bool = False) -> bool:
    """Publish the run's message, behind the fresh work on its queue, or ahead of it when the run
    `resume`s (taken over, or its message lost). False (and the run marked undispatched) if the
    broker is unreachable or was a moment ago; `force` tries anyway (the watchdog probing for recovery)."""
    if broker.publish_breaker.is_open and not force:
        lifecycle.run_dispatched(run_id=run.id, at=None)
        return False
    try:
        broker.run_message_publish(task_name=run.kind, run_id=str(run.id), queue=run.queue,
                                   correlation_id=run.correlation_id, kwargs_repr=task_kwargs_repr(run), resume=resume)
    except Exception as exc:  # kombu raises several types for an unreachable broker
        broker.publish_breaker.trip()
        lifecycle.run_dispatched(run_id=run.id, at=None)
        logger.warning("broker unreachable; run left for the watchdog",
                       extra={"run_id": str(run.id), "kind": run.kind, "cause": f"{type(exc).__name__}: {exc}"})
        return False
    broker.publish_breaker.reset()
    return True


def runs_dispatch_pending() -> dict[str, int]:
    """Publish runs whose message is gone: never published (broker down at the time), or vanished
    from the broker (flushed, restarted empty, held by a worker that died). The claim makes any
    duplicate a no-op, and a RETRY run is published only once its due time is well past."""
    now = timezone.now()
    lost_after = now - timedelta(seconds=settings.RUN_MESSAGE_LOST_AFTER_SECONDS)
    candidates = list(
        JobRun.objects.filter(cancel_requested=False)
        .filter(Q(status=RunStatus.QUEUED, dispatched_at__isnull=True)
                | Q(status=RunStatus.QUEUED, dispatched_at__lt=lost_after)
                | Q(status=RunStatus.RETRY, due_at__lt=lost_after)
                | Q(status=RunStatus.RETRY, due_at__isnull=True, dispatched_at__lt=lost_after))
        .order_by("created_at")[:DISPATCH_BATCH_SIZE]
    )
    if not candidates:
        return {"found": 0, "published": 0}
    # A message delivered to a worker that has not beaten since is as good as lost with it.
    in_broker = broker.message_ids_held(queues=sorted({run.queue for run in candidates}),
                                   delivered_since=time.time() - settings.RUN_HEARTBEAT_TIMEOUT_SECONDS)
    fallback_before = now - timedelta(seconds=settings.RUN_REDISPATCH_AFTER_SECONDS)
    published = 0
    parents: set = set()
    for run in candidates:
        never_sent = run.dispatched_at is None
        spec = kind_find(run.kind)
        if never_sent and spec and spec.fair_share and run.owner_id is not None \
                and _published_unfinished(kind=run.kind, owner_id=run.owner_id) >= spec.fair_share:
            continue  # waiting its turn, not lost
        if never_sent and spec and spec.parent_share and run.parent_id is not None:
            parents.add(run.parent_id)  # its parent's turn decides, below
            continue
        if not never_sent:
            if in_broker is None and run.dispatched_at >= fallback_before:
                continue  # the broker cannot say; only very old runs are sent again
            if in_broker is not None and str(run.id) in in_broker:
                continue
        lifecycle.run_dispatched(run_id=run.id, at=timezone.now())
        # A message that vanished was in line before anything waiting now: it goes first.
        if not run_dispatch(run=run, force=True, resume=not never_sent):
            break
        published += 1
    published += sum(runs_dispatch_waiting_children(parent_id=parent_id) for parent_id in parents)
    if published:
        logger.info("published runs whose message was missing", extra={"published": published,
                                                                         "found": len(candidates)})
    return {"found": len(candidates), "published": published}


# --- steering ---------------------------------------------------------------------------

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


def _revoke_broadcast(*, run_id: str, status: str) -> None:
    try:
        broker.run_revoke_broadcast(run_id=run_id)
        if status in RUNNING_STATUSES:
            broker.task_send_later(task_name=CANCEL_ENFORCE_TASK, kwargs={"run_id": run_id}, queue=MAINTENANCE_QUEUE,
                                   countdown=settings.CANCEL_GRACE_SECONDS)
    except Exception as exc:
        # The database flag is what counts; the watchdog enforces the grace if this message is lost.
        logger.warning("revoke broadcast failed", extra={"run_id": run_id, "cause": str(exc)})


def runs_enforce_cancel(*, run_id: str | None = None) -> int:
    """Terminate runs still running CANCEL_GRACE_SECONDS after their cancel (one run, or all
    overdue ones), and end them REVOKED. Returns how many were terminated."""
    overdue = JobRun.objects.filter(status__in=RUNNING_STATUSES, cancel_requested=True,
                                    cancel_requested_at__lte=timezone.now()
                                    - timedelta(seconds=settings.CANCEL_GRACE_SECONDS * 0.9))
    if run_id is not None:
        overdue = overdue.filter(id=run_id)
    terminated = 0
    for run in overdue[:DISPATCH_BATCH_SIZE]:
        try:
            broker.run_revoke_broadcast(run_id=str(run.id), terminate=True)
        except Exception as exc:
            logger.warning("terminate broadcast failed", extra={"run_id": str(run.id), "cause": str(exc)})
        if lifecycle.run_revoke(run_id=str(run.id), reason=f"terminated {settings.CANCEL_GRACE_SECONDS} s after "
                                                           "its cancel"):
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
        new_run = run_enqueue(kind=locked.kind, args=locked.args, owner=locked.owner or owner,
                              triggered_by=triggered_by, job=locked.job, parent=locked.parent, retry_of=locked,
                              queue=locked.queue)
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
