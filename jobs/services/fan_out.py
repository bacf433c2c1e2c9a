"""A run that fans out into child runs: its waiting children published a few at a time, their
progress rolled up into the parent's, and the parent queued once, exactly once, for its final step
when the last child ends (and found again by the watchdog if that announcement was lost)."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Exists, Min, OuterRef
from django.dispatch import receiver
from django.utils import timezone

from jobs import lifecycle
from jobs.models import FINISHED_STATUSES, RUNNING_STATUSES, UNFINISHED_STATUSES, JobRun, RunStatus
from jobs.registry import kind_find
from jobs.selectors import run_children_counts
from jobs.services.runs import DISPATCH_BATCH_SIZE, run_dispatch, runs_in_flight

logger = logging.getLogger(__name__)


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
        free = (spec.parent_share or len(waiting)) - runs_in_flight(kind=spec.kind, parent_id=parent_id)
        chosen = list(waiting[:max(free, 0)])
        for run in chosen:
            lifecycle.run_dispatched(run_id=run.id, sent=True)
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
def _parent_after_child_ended(sender, parent_id, **kwargs):
    """A child ended: its parent's next children and, after the last one, the parent's final step."""
    if parent_id is not None:
        run_children_progress(parent_id=parent_id)
