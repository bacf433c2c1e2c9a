"""Accepting and publishing runs: a run recorded before its message is sent, published after
commit (or left for the watchdog while the broker is away), its owner's fair share kept, and a
message that vanished from the broker published again."""

from __future__ import annotations

import logging
import uuid
from contextlib import nullcontext
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.dispatch import receiver

from core.errors import ErrorCode
from core.logging import correlation_id_get
from jobs import broker, lifecycle
from jobs.calls import RUN_OWNER_HEADER, CeleryCall
from jobs.errors import JobsError
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
    run_id: uuid.UUID | None = None,
    due_at: datetime | None = None,
    expires_at: datetime | None = None,
    continuation: dict | None = None,
    canvas_id: uuid.UUID | None = None,
) -> JobRun:
    """Record a run (QUEUED) and publish it once the surrounding transaction commits; outside
    one, the run's INSERT is its own transaction (one round trip) and it is published at once.

    If the broker is down the run stays QUEUED, undispatched, and the watchdog publishes it
    later: an accepted run is never lost. A run `due_at` a later time waits in the database, not
    in the broker, and beat publishes it when it is due (runs_publish_due); one not started by
    `expires_at` ends REVOKED as expired. `run_id` is the caller's id for the run (Celery's
    `task_id`); the caller makes sure it names no run yet.
    """
    spec = kind_get(kind)
    fields = dict(kind=kind, queue=queue or spec.queue, args=args or {}, owner=owner, triggered_by=triggered_by,
                  job=job, parent=parent, retry_of=retry_of, max_attempts=spec.retry.max_attempts,
                  time_limit=spec.hard_limit, correlation_id=correlation_id_get() or "", started_by=started_by,
                  due_at=due_at, expires_at=expires_at, continuation=continuation, canvas_id=canvas_id,
                  **({"id": run_id} if run_id is not None else {}))
    owner_shared = bool(spec.fair_share and owner is not None)
    parent_shared = bool(spec.parent_share and parent is not None)
    # A share's count and hold stand or fall with the run; any other run is one INSERT, its own transaction.
    with transaction.atomic() if owner_shared or parent_shared else nullcontext():
        run = lifecycle.run_accept(**fields)
        if due_at is not None:
            return run  # published by beat when due, its owner's share judged then
        if (owner_shared and runs_in_flight(kind=kind, owner_id=owner.pk) > spec.fair_share) or \
                (parent_shared and runs_in_flight(kind=kind, parent_id=parent.pk) > spec.parent_share):
            # Waits its turn: published when one of this owner's (or this parent's) runs of this kind ends.
            lifecycle.run_dispatched(run_id=run.id, sent=False)
            return run
        transaction.on_commit(lambda: run_dispatch(run=run))
    return run


def _owner_named(username: str | None):
    if not username:
        return None
    from django.contrib.auth import get_user_model

    owner = get_user_model().objects.filter(username=username, is_active=True).first()
    if owner is None:
        raise JobsError(f"{RUN_OWNER_HEADER}={username!r} names no active user", field=RUN_OWNER_HEADER)
    return owner


def run_enqueue_from_celery(*, kind: str, params: dict, call: CeleryCall, triggered_by: str) -> JobRun:
    """A run asked for through Celery's `apply_async` with its options (jobs.calls). A `task_id`
    already naming a run of this kind returns that run: the same call made twice records one run
    (an idempotency key, as Stripe's); naming a run of another kind is refused."""
    if call.run_id is not None:
        existing = JobRun.objects.filter(id=call.run_id).first()
        if existing is not None:
            if existing.kind != kind:
                raise JobsError(f"task_id {call.run_id} already names a run of {existing.kind}", field="task_id",
                                code=ErrorCode.CONFLICT)
            return existing
    continuation = call.continuation
    if continuation and "chord" in continuation:
        continuation = {"chord": {**continuation["chord"], "size": chord_size(group_id=continuation["chord"]["group_id"])}}
    fields = dict(kind=kind, args=params, owner=_owner_named(call.owner_name), triggered_by=triggered_by,
                  queue=call.queue, run_id=call.run_id, due_at=call.due_at, expires_at=call.expires_at,
                  continuation=continuation, canvas_id=call.canvas_id)
    if call.run_id is None:
        return run_enqueue(**fields)
    try:
        with transaction.atomic():
            return run_enqueue(**fields)
    except IntegrityError:  # the same task_id, an instant earlier, from another caller
        return run_enqueue_from_celery(kind=kind, params=params, call=call, triggered_by=triggered_by)


def chord_size(*, group_id: str) -> int:
    """How many runs a chord's header has: Celery's chord() records it (django-celery-results'
    ChordCounter) before it applies the header, whose members are recorded one by one."""
    from django_celery_results.models import ChordCounter

    counter = ChordCounter.objects.filter(group_id=group_id).first()
    if counter is None:
        raise JobsError(f"chord {group_id} has no recorded size: chord= is given by chord() alone", field="chord")
    return counter.count


def run_record_received(*, kind: str, run_id: str | None, params: dict, owner_name: str | None, in_process: bool,
                        queue: str | None) -> str:
    """Record the run of a call that did not go through `apply_async` (jobs.runner.run_record_unannounced)
    under `run_id` (a new id when there is none), unless it is recorded already; its id. Params the
    kind refuses (or an owner nobody is) still record the run, which then fails at once, saying why:
    the caller's work is never dropped without a trace."""
    run_id = str(run_id or uuid.uuid4())
    spec = kind_get(kind)
    problem = None
    try:
        owner = _owner_named(owner_name)
        params = spec.validate_params(params)
    except JobsError as exc:
        if in_process:
            raise  # the caller is here to be told, as apply_async tells it
        owner, problem = None, exc.message
    triggered_by = TriggeredBy.SHELL if in_process else TriggeredBy.SYSTEM
    # Not published: this message (or this call) is the run's. A redelivery of a message already
    # recorded records nothing; the claim decides.
    recorded = lifecycle.run_accept(
        if_absent=True, kind=kind, queue=queue if queue in settings.CELERY_TASK_QUEUES else spec.queue,
        args=params if problem is None else {}, owner=owner, triggered_by=triggered_by,
        max_attempts=spec.retry.max_attempts, time_limit=spec.hard_limit, correlation_id=correlation_id_get() or "",
        id=uuid.UUID(run_id))
    if recorded is not None and problem is not None:
        lifecycle.run_fail(run_id=run_id, error=f"refused: {problem}", attempt=None, event="refused")
    return run_id


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
                                         dispatched_at__isnull=True).filter(not_put_off())
                   .order_by("created_at")[:max(free, 0)])
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


def not_put_off() -> Q:
    """Waiting runs whose due time, if they have one, has come (by the database's clock)."""
    return Q(due_at__isnull=True) | Q(due_at__lte=Now())


def runs_publish_due() -> int:
    """Publish the runs put off to a due time that has come (Celery's `countdown` / `eta`), and end
    those not started by their `expires_at`. Beat calls it every second (jobs.beat), so a run is
    published at most a second late; the watchdog publishes any it left (runs_dispatch_pending).
    Returns how many it published."""
    for run_id in JobRun.objects.filter(status=RunStatus.QUEUED, started_at__isnull=True, expires_at__lte=Now()) \
            .values_list("id", flat=True)[:DISPATCH_BATCH_SIZE]:
        lifecycle.run_expire(run_id=str(run_id))
    published = 0
    for run in JobRun.objects.filter(status=RunStatus.QUEUED, dispatched_at__isnull=True, cancel_requested=False,
                                     due_at__lte=Now()).order_by("due_at")[:DISPATCH_BATCH_SIZE]:
        spec = kind_find(run.kind)
        if spec and spec.fair_share and run.owner_id is not None \
                and runs_in_flight(kind=run.kind, owner_id=run.owner_id) >= spec.fair_share:
            continue  # due, and now waits its owner's turn like any run (runs_dispatch_waiting)
        lifecycle.run_dispatched(run_id=run.id, sent=True)
        if not run_dispatch(run=run):
            break  # the broker is away: the watchdog publishes them once it is back
        published += 1
    return published


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
