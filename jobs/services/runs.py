"""Accepting and publishing runs: a run recorded before its message is sent, published after
commit (or left for the watchdog while the broker is away), its owner's fair share kept, and a
message that vanished from the broker published again."""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

from django.db import transaction
from django.dispatch import receiver

from core.logging import correlation_id_get
from jobs import broker, lifecycle
from jobs.models import UNFINISHED_STATUSES, Job, JobRun, RunStatus, TriggeredBy
from jobs.registry import kind_find, kind_get

logger = logging.getLogger(__name__)

# Publishing is one round trip per run; a bounded batch keeps one watchdog pass short.
DISPATCH_BATCH_SIZE = 500
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
    started_by=None,
) -> JobRun:
    """Record a run (QUEUED) and publish it once the surrounding transaction commits; outside
    one, the run's INSERT is its own transaction (one round trip) and it is published at once.

    If the broker is down the run stays QUEUED, undispatched, and the watchdog publishes it
    later: an accepted run is never lost.
    """
    spec = kind_get(kind)
    fields = dict(kind=kind, queue=queue or spec.queue, args=args or {}, owner=owner, triggered_by=triggered_by,
                  job=job, parent=parent, retry_of=retry_of, max_attempts=spec.retry.max_attempts,
                  time_limit=spec.hard_limit, correlation_id=correlation_id_get() or "", started_by=started_by)
    owner_shared = bool(spec.fair_share and owner is not None)
    parent_shared = bool(spec.parent_share and parent is not None)
    # A share's count and hold stand or fall with the run; any other run is one INSERT, its own transaction.
    with transaction.atomic() if owner_shared or parent_shared else nullcontext():
        run = lifecycle.run_accept(**fields)
        if (owner_shared and runs_in_flight(kind=kind, owner_id=owner.pk) > spec.fair_share) or \
                (parent_shared and runs_in_flight(kind=kind, parent_id=parent.pk) > spec.parent_share):
            # Waits its turn: published when one of this owner's (or this parent's) runs of this kind ends.
            lifecycle.run_dispatched(run_id=run.id, sent=False)
            return run
        transaction.on_commit(lambda: run_dispatch(run=run))
    return run


def runs_in_flight(*, kind: str, owner_id: int | None = None, parent_id=None) -> int:
    """This owner's (or this parent's) runs of this kind that were published and have not ended."""
    scope = {"owner_id": owner_id} if parent_id is None else {"parent_id": parent_id}
    return JobRun.objects.filter(kind=kind, status__in=UNFINISHED_STATUSES, dispatched_at__isnull=False,
                                 **scope).count()


def runs_dispatch_waiting(*, kind: str, owner_id: int) -> int:
    """Publish this owner's oldest runs that wait their turn, up to the kind's fair share."""
    spec = kind_find(kind)
    if spec is None or not spec.fair_share:
        return 0
    free = spec.fair_share - runs_in_flight(kind=kind, owner_id=owner_id)
    waiting = list(JobRun.objects.filter(kind=kind, owner_id=owner_id, status=RunStatus.QUEUED, cancel_requested=False,
                                         dispatched_at__isnull=True).order_by("created_at")[:max(free, 0)])
    for run in waiting:
        lifecycle.run_dispatched(run_id=run.id, sent=True)
        run_dispatch(run=run)
    return len(waiting)


@receiver(lifecycle.run_ended)
def _owner_turn_after_run_ended(sender, owner_id, kind, **kwargs):
    """A fair-share kind's run ended: its owner's next waiting run takes the place it left."""
    spec = kind_find(kind)
    if spec is not None and spec.fair_share and owner_id is not None:
        runs_dispatch_waiting(kind=kind, owner_id=owner_id)


def task_kwargs_repr(run: JobRun) -> str:
    # The domain's ids first, so a narrow column (Flower's) shows the document or message; the run
    # id is the task id already, shown beside it.
    about = {**(run.args or {}), **({"job_id": run.job_id} if run.job_id else {})}
    text = repr(about)
    return text if len(text) <= KWARGS_REPR_CHARS else text[:KWARGS_REPR_CHARS - 1] + "…"


def run_dispatch(*, run: JobRun, force: bool = False, resume: bool = False) -> bool:
    """Publish the run's message, behind the fresh work on its queue, or ahead of it when the run
    `resume`s (taken over, or its message lost). False (and the run marked undispatched, for the
    watchdog) if the broker is unreachable or was a moment ago; `force` tries anyway (the watchdog
    probing for recovery)."""
    try:
        broker.run_message_publish(task_name=run.kind, run_id=str(run.id), queue=run.queue,
                                   correlation_id=run.correlation_id, kwargs_repr=task_kwargs_repr(run), resume=resume,
                                   force=force)
    except broker.BrokerUnavailable as exc:
        lifecycle.run_dispatched(run_id=run.id, sent=False)
        logger.warning("broker unreachable; run left for the watchdog",
                       extra={"run_id": str(run.id), "kind": run.kind, "cause": str(exc)})
        return False
    return True
