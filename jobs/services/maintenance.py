"""The watchdog (recovery that needs no operator) and the cleanup of old runs and results."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Callable

from django.conf import settings
from django.db import reset_queries
from django.db.models import Q
from django.utils import timezone

from core.clock import database_now
from jobs import broker, lifecycle
from jobs.models import FINISHED_STATUSES, JobRun, RunStatus
from jobs.registry import kind_find
from jobs.services.canvas import runs_hand_on_pending
from jobs.services.counts import run_counts_refresh
from jobs.services.fan_out import runs_dispatch_waiting_children, runs_resume_parents
from jobs.services.runs import DISPATCH_BATCH_SIZE, not_put_off, run_dispatch, runs_in_flight
from jobs.services.steering import runs_enforce_cancel
from jobs.services.tallies import run_tallies_fold

if TYPE_CHECKING:
    from jobs.runner import RunContext

logger = logging.getLogger(__name__)

# Maintenance works in batches so one statement never holds locks on, or loads, a whole table.
CLEANUP_BATCH_SIZE = 1000
# A cleanup works this long, then hands its worker back and goes on as a new slice behind the
# maintenance work waiting meanwhile (the watchdog first): however large the backlog, no attempt
# runs into the kind's time limit. At about 4,700 runs/s (bench/cleanup.py) a slice deletes some
# 280,000 runs, so a day of 1,000,000 runs takes four slices.
CLEANUP_SLICE_SECONDS = 60
# Runs examined per reaper pass; the next pass, seconds later, takes the rest.
REAP_BATCH_SIZE = 200


def runs_dispatch_pending() -> dict[str, int]:
    """Publish runs whose message is gone: never published (broker down at the time), or vanished
    from the broker (flushed, restarted empty, held by a worker that died). The claim makes any
    duplicate a no-op, and a RETRY run is published only once its due time is well past. Judged by
    the database's clock, which wrote the times judged."""
    now = database_now()
    lost_after = now - timedelta(seconds=settings.RUN_MESSAGE_LOST_AFTER_SECONDS)
    candidates = list(
        JobRun.objects.filter(cancel_requested=False)
        .filter(not_put_off())
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
                and runs_in_flight(kind=run.kind, owner_id=run.owner_id) >= spec.fair_share:
            continue  # waiting its turn, not lost
        if never_sent and spec and spec.parent_share and run.parent_id is not None:
            parents.add(run.parent_id)  # its parent's turn decides, below
            continue
        if not never_sent:
            if in_broker is None and run.dispatched_at >= fallback_before:
                continue  # the broker cannot say; only very old runs are sent again
            if in_broker is not None and str(run.id) in in_broker:
                continue
        lifecycle.run_dispatched(run_id=run.id, sent=True)
        # A message that vanished was in line before anything waiting now: it goes first.
        if not run_dispatch(run=run, force=True, resume=not never_sent):
            break
        published += 1
    published += sum(runs_dispatch_waiting_children(parent_id=parent_id) for parent_id in parents)
    if published:
        logger.info("published runs whose message was missing", extra={"published": published,
                                                                         "found": len(candidates)})
    return {"found": len(candidates), "published": published}


def runs_reap_stale() -> dict[str, int]:
    """Runs whose worker stopped heartbeating (its process is gone, paused or cut off): re-queued and
    published ahead of fresh work while attempts remain, else failed and dead (with the kind's
    final-failure hook). A worker that wakes later holds no lease and writes nothing."""
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
    parents whose last child's end was not announced, chains and chords not handed on.

    Not recorded as runs: a pass that finds nothing is most passes, and would bury real work in
    the runs list. What it does is logged with its timing."""
    started = time.monotonic()
    reaped = runs_reap_stale()
    terminated = runs_enforce_cancel()
    dispatched = runs_dispatch_pending()
    resumed = runs_resume_parents()
    handed_on = runs_hand_on_pending()
    run_tallies_fold()  # after recovery: a slow fold never delays a takeover
    run_counts_refresh()  # every RUN_COUNTS_EVERY_SECONDS at most
    outcome = {**reaped, "terminated": terminated, "published": dispatched["published"], "resumed": resumed,
               "handed_on": handed_on}
    if any(outcome.values()):
        logger.info("watchdog pass", extra={**outcome, "seconds": round(time.monotonic() - started, 3)})
    return outcome


def _delete_in_batches(queryset, *, pk_field: str = "pk", after_batch: Callable[[int], None] | None = None) -> int:
    deleted = 0
    while True:
        ids = list(queryset.values_list(pk_field, flat=True)[:CLEANUP_BATCH_SIZE])
        if not ids:
            return deleted
        # The ids alone: the delete loads the rows it handles (for their related rows), and none of
        # their other columns (results, logs, tracebacks) is needed for that. 28% faster in
        # bench/cleanup.py, on rows far smaller than real ones.
        queryset.model.objects.filter(**{f"{pk_field}__in": ids}).only(pk_field).delete()
        deleted += len(ids)
        # Outside a worker (a command, the shell, bench/cleanup.py) with DEBUG on, Django keeps each
        # statement, and these carry a thousand ids each: memory stays flat only if they go per batch.
        reset_queries()
        if after_batch is not None:
            after_batch(len(ids))


def results_cleanup(*, older_than_days: int | None = None) -> dict[str, int]:
    from django_celery_results.models import GroupResult, TaskResult

    kept = timedelta(seconds=settings.CELERY_RESULT_EXPIRES) if older_than_days is None else timedelta(days=older_than_days)
    cutoff = timezone.now() - kept
    tasks = _delete_in_batches(TaskResult.objects.filter(date_done__lt=cutoff))
    groups = _delete_in_batches(GroupResult.objects.filter(date_done__lt=cutoff))
    return {"task_results": tasks, "group_results": groups}


def runs_cleanup(*, older_than_days: int | None = None, dead_older_than_days: int | None = None,
                 ctx: RunContext | None = None) -> dict[str, int]:
    """Delete finished runs past their retention, in batches. Within a run (`ctx`), it reports
    progress after each batch and yields its worker every CLEANUP_SLICE_SECONDS, its counts kept
    as checkpoints, so the next slice goes on from there."""
    days = settings.RUNS_RETENTION_DAYS if older_than_days is None else older_than_days
    dead_days = settings.DEAD_RUNS_RETENTION_DAYS if dead_older_than_days is None else dead_older_than_days
    now = timezone.now()
    # Only runs already counted in the tallies go, so the metrics' counters never fall.
    folded_until = run_tallies_fold(now=now)
    finished = JobRun.objects.filter(status__in=FINISHED_STATUSES, finished_at__lt=folded_until)
    expired = {"runs": finished.filter(dead=False, finished_at__lt=now - timedelta(days=days)),
               "dead_runs": finished.filter(dead=True, finished_at__lt=now - timedelta(days=dead_days))}
    if ctx is None:
        return _recounted({name: _delete_in_batches(runs) for name, runs in expired.items()})

    counts = {name: int(ctx.checkpoints.get(name, 0)) for name in expired}
    left = sum(runs.count() for runs in expired.values())

    def after_batch(name: str, deleted: int) -> None:
        nonlocal left
        counts[name] += deleted
        left -= deleted
        done = sum(counts.values())
        ctx.progress(done, done + max(left, 0), step="deleting", message=f"{done} runs deleted")
        if left > 0 and ctx.slice_over(CLEANUP_SLICE_SECONDS):
            ctx.checkpoint(counts)
            ctx.yield_turn(reason=f"a slice of {CLEANUP_SLICE_SECONDS} s used at {done} runs deleted")

    for name, runs in expired.items():
        _delete_in_batches(runs, after_batch=lambda deleted, name=name: after_batch(name, deleted))
    return _recounted(counts)


def _recounted(deleted: dict[str, int]) -> dict[str, int]:
    """The run stats count ended runs in the background: once runs are deleted, at once."""
    if any(deleted.values()):
        run_counts_refresh(force=True)
    return deleted
