"""Celery's chain and chord on tracked runs: what follows a run, handed on exactly once.

A chain's first run keeps the links still to run (`JobRun.continuation`, jobs.calls.canvas_link),
each with the id Celery froze for it; when a run of the chain succeeds, the next link is recorded
under that id and published, carrying the rest. A chord's header runs each keep the chord's body;
when the last of them ends, the body is recorded under its frozen id: run with the header's results
if every one succeeded, or failed at once with Celery's ChordError if one did not.

Exactly once without a counter that can be lost: the next run's id is fixed before anything runs,
and it is recorded with INSERT … ON CONFLICT DO NOTHING, so whoever hands on first (the worker that
ended the run, just after its commit, or the watchdog's backstop after a worker died in between)
records it and every later attempt finds it there. A chord's members are counted under a lock on
the chord (an advisory lock on its group id), so two header runs that end at the same instant on
two machines are counted one after the other, and the second sees the first's end.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery.exceptions import ChordError
from django.db import connection, transaction
from django.db.models import Q
from django.dispatch import receiver
from django.utils import timezone
from django_celery_results.models import ChordCounter

from core.logging import correlation_id_get
from jobs import lifecycle
from jobs.calls import PREVIOUS_RESULT
from jobs.errors import JobsError
from jobs.models import FINISHED_STATUSES, UNFINISHED_STATUSES, JobRun, RunStatus
from jobs.registry import kind_get
from jobs.services.runs import DISPATCH_BATCH_SIZE, run_dispatch

logger = logging.getLogger(__name__)

# The backstop leaves a run this long to the worker that ended it (which hands on just after its
# commit) before doing it itself.
HAND_ON_GRACE_SECONDS = 2.0


def _link_accept(*, link: dict, previous, owner_id, triggered_by: str, continuation: dict | None,
                 canvas_id) -> JobRun | None:
    """The run of a chain's next link or a chord's body, under its frozen id; None if recorded already.
    Params its kind refuses (a previous result it cannot take) record it failed at once, saying why."""
    spec = kind_get(link["kind"])
    args = dict(link["kwargs"])
    if not link["immutable"]:
        args[PREVIOUS_RESULT] = previous
    problem = None
    try:
        args = spec.validate_params(args)
    except JobsError as exc:
        problem = exc.message
    run = lifecycle.run_accept(
        if_absent=True, id=uuid.UUID(link["task_id"]), kind=spec.kind, queue=link.get("queue") or spec.queue,
        args=args, owner_id=owner_id, triggered_by=triggered_by, max_attempts=spec.retry.max_attempts,
        time_limit=spec.hard_limit, correlation_id=correlation_id_get() or "", canvas_id=canvas_id,
        continuation=continuation if problem is None else None)
    if run is not None and problem is not None:
        lifecycle.run_fail(run_id=str(run.id), error=f"refused: {problem}", attempt=None, event="refused")
        return None
    return run


def run_hand_on(*, run_id) -> JobRun | None:
    """Record (and publish) what follows the ended run `run_id` in its chain or chord, if its turn
    has come and nobody did yet. Returns the run recorded now, if this call recorded one."""
    run = JobRun.objects.filter(id=run_id, continuation__isnull=False, status__in=FINISHED_STATUSES).first()
    if run is None:
        return None
    if "chain" in run.continuation:
        recorded = _chain_next(run)
    else:
        recorded = _chord_body(group_id=run.continuation["chord"]["group_id"])
    if recorded is not None and recorded.status == RunStatus.QUEUED:
        run_dispatch(run=recorded)
    return recorded


def _chain_next(run: JobRun) -> JobRun | None:
    if run.status != RunStatus.SUCCESS:
        return None  # the chain stops here; a retry of this run carries it on when it succeeds
    following, *rest = run.continuation["chain"]
    with transaction.atomic():
        recorded = _link_accept(link=following, previous=run.result, owner_id=run.owner_id,
                                triggered_by=run.triggered_by, continuation={"chain": rest} if rest else None,
                                canvas_id=run.canvas_id or run.id)
        lifecycle.runs_handed_on(run_ids=[run.id])
    return recorded


def _chord_body(*, group_id: str) -> JobRun | None:
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"chord:{group_id}"])
        members = list(JobRun.objects.filter(continuation__isnull=False, continuation__chord__group_id=group_id)
                       .order_by("created_at"))
        if not members:
            return None  # handed on already
        chord = members[0].continuation["chord"]
        latest = {member.continuation["chord"]["index"]: member for member in members}  # a retry replaces its run
        if len(latest) < chord["size"] or any(not member.is_finished for member in latest.values()):
            return None  # not every header run has ended (or been recorded) yet
        header = [latest[index] for index in sorted(latest)]
        failed = next((member for member in header if member.status != RunStatus.SUCCESS), None)
        body = _link_accept(link=chord["body"], previous=[member.result for member in header],
                            owner_id=members[0].owner_id, triggered_by=members[0].triggered_by, continuation=None,
                            canvas_id=members[0].canvas_id)
        if body is not None and failed is not None:
            error = f"Dependency {failed.id} raised {failed.error or failed.status}"
            lifecycle.run_fail(run_id=str(body.id), error=f"ChordError: {error}", attempt=None, event="chord failed",
                               exc=ChordError(error))
            body.status = RunStatus.FAILURE
        lifecycle.runs_handed_on(run_ids=[member.id for member in members])
        # Celery's chord() counted its header here (jobs.services.runs.chord_size); done with.
        ChordCounter.objects.filter(group_id=group_id).delete()
    logger.info("chord body recorded", extra={"group_id": group_id, "runs": len(header),
                                              "failed": str(failed.id) if failed else None})
    return body


@receiver(lifecycle.run_ended)
def _hand_on_after_run_ended(sender, run_id, continuing=False, **kwargs):
    """A chain or chord member ended: what follows it, at once. The watchdog's backstop does it for
    a worker that died in between."""
    if not continuing:
        return
    try:
        run_hand_on(run_id=run_id)
    except Exception:
        logger.exception("chain or chord not handed on; the watchdog will", extra={"run_id": run_id})


def runs_hand_on_pending() -> int:
    """The watchdog's backstop: ended chain and chord members whose successor nobody recorded."""
    pending = (JobRun.objects.filter(continuation__isnull=False, status__in=FINISHED_STATUSES,
                                     finished_at__lt=timezone.now() - timedelta(seconds=HAND_ON_GRACE_SECONDS))
               .filter(Q(status=RunStatus.SUCCESS) | Q(continuation__has_key="chord"))
               .values_list("id", flat=True)[:DISPATCH_BATCH_SIZE])
    return sum(run_hand_on(run_id=run_id) is not None for run_id in list(pending))


def runs_following(*, task_id: str) -> list[JobRun]:
    """The unfinished runs a chain's later link or a chord's body waits on, named by that link's
    frozen id (its AsyncResult's id, before it has a run): revoking it cancels them."""
    return list(JobRun.objects.filter(continuation__isnull=False, status__in=UNFINISHED_STATUSES)
                .filter(Q(continuation__chain__contains=[{"task_id": task_id}])
                        | Q(continuation__chord__body__task_id=task_id)))
