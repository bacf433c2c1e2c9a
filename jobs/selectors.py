"""Reads of the job platform: what a user may see, and how the system is doing."""

from __future__ import annotations

import re
from datetime import timedelta

from django.db.models import CharField, Count, DateTimeField, ExpressionWrapper, Q, QuerySet, Sum
from django.db.models.functions import Cast, Now
from django.utils import timezone

from core.counts import count_bounded
from core.permissions import sees_everyones
from jobs import broker
from jobs.constants import WORKER_PRESENCE_SECONDS
from jobs.models import (
    FINISHED_STATUSES,
    UNFINISHED_STATUSES,
    Job,
    JobRun,
    RunCount,
    RunStatus,
    TokenUsage,
    WorkerPresence,
)
from jobs.registry import kind_find, queues_all

# The admin shows 8 characters of an id; 4 are the least that still narrow a search usefully.
SHORT_ID = re.compile(r"[0-9a-f]{4,8}(-[0-9a-f-]{0,28})?")
FULL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def run_visible_to(*, user) -> QuerySet[JobRun]:
    runs = JobRun.objects.all()
    return runs if sees_everyones(user, JobRun) else runs.filter(owner=user)


def runs_matching_id(*, prefix: str, runs: QuerySet[JobRun] | None = None) -> QuerySet[JobRun] | None:
    """Runs whose id starts with `prefix`: the short id the admin shows, or a whole id. None when
    `prefix` cannot be the start of an id (too short to mean one run, or not hexadecimal)."""
    cleaned = prefix.strip().lower()
    if not SHORT_ID.fullmatch(cleaned):
        return None
    runs = runs if runs is not None else JobRun.objects.all()
    return runs.annotate(id_text=Cast("id", output_field=CharField())).filter(id_text__startswith=cleaned)


def runs_by_ids(*, ids: list[str]) -> list[JobRun]:
    valid = [i for i in ids if FULL_ID.fullmatch(i.strip().lower())]
    return list(JobRun.objects.filter(id__in=valid).with_retries().with_stalled())


def run_children_counts(*, parent_id) -> dict[str, int]:
    """How many of the run's children have each status."""
    return dict(JobRun.objects.filter(parent_id=parent_id).values_list("status").annotate(n=Count("id")))


def job_output(*, job: Job) -> dict | None:
    """What the job last produced, as its kind describes it (a research digest: which one, how
    complete); None for kinds that say nothing or before a first output."""
    spec = kind_find(job.kind)
    return spec.job_output(job) if spec is not None and spec.job_output is not None else None


def job_visible_to(*, user) -> QuerySet[Job]:
    jobs = Job.objects.all()
    return jobs if sees_everyones(user, Job) else jobs.filter(owner=user)


def queue_depths() -> dict[str, int | None]:
    """Messages waiting in each queue; None where the broker cannot be read."""
    return broker.queue_depths(queues=queues_all())


def _presence_recent() -> QuerySet[WorkerPresence]:
    """Workers whose last heartbeat is recent by the database's clock, which wrote it."""
    since = ExpressionWrapper(Now() - timedelta(seconds=WORKER_PRESENCE_SECONDS), output_field=DateTimeField())
    return WorkerPresence.objects.filter(seen_at__gte=since).order_by("name")


def workers_online() -> list[str]:
    """The workers whose last heartbeat is recent (jobs.services.presence), by node name."""
    return list(_presence_recent().values_list("name", flat=True))


def worker_clock_offsets() -> dict[str, float | None]:
    """Each online worker's clock offset from the database's, in seconds (None: not measured yet)."""
    return dict(_presence_recent().values_list("name", "clock_offset_seconds"))


def token_usage(*, user=None) -> dict:
    """LLM tokens as the servers reported them: the user's own, everyone's for staff who see every
    run, and everyone's with no user (the metrics)."""
    usage = TokenUsage.objects.all()
    if user is not None and not sees_everyones(user, JobRun):
        usage = usage.filter(owner=user)
    sums = usage.aggregate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), reported=Sum("reported"),
                           unreported=Sum("unreported"))
    return {"prompt_tokens": sums["prompt"] or 0, "completion_tokens": sums["completion"] or 0,
            "answers_with_counts": sums["reported"] or 0, "answers_without_counts": sums["unreported"] or 0}


def run_stats(*, user) -> dict:
    """Counts over the runs the user may see. Staff also get the broker's queue depths and the
    workers' names; a user gets their own waiting runs per queue and how many workers answer."""
    runs = run_visible_to(user=user)
    hour_ago = timezone.now() - timedelta(hours=1)
    by_status, by_kind = _counts(user=user, runs=runs)
    last_hour = runs.filter(status__in=FINISHED_STATUSES, finished_at__gte=hour_ago).aggregate(
        finished=Count("id"), failed=Count("id", filter=Q(status=RunStatus.FAILURE)),
    )
    finished = last_hour["finished"] or 0
    workers = workers_online()
    return {
        "by_status": by_status,
        "by_kind": dict(sorted(by_kind.items())),
        "dead": count_bounded(runs.dead_letters()),
        "queue_depths": queue_depths() if sees_everyones(user, JobRun) else _own_waiting_by_queue(runs),
        "workers_online": len(workers),
        "workers": workers if sees_everyones(user, JobRun) else [],
        "tokens": token_usage(user=user),
        "last_hour": {
            "finished": finished,
            "failed": last_hour["failed"] or 0,
            "throughput_per_minute": round(finished / 60.0, 2),
            "failure_rate": round((last_hour["failed"] or 0) / finished, 4) if finished else 0.0,
        },
    }


def _counts(*, user, runs: QuerySet[JobRun]) -> tuple[dict[str, int], dict[str, int]]:
    """Runs by status and by kind: the ended ones counted in the background (jobs.services.counts),
    plus, read live, those unfinished and those ended since that count."""
    from jobs.services.counts import run_counts_until

    by_status = dict.fromkeys(RunStatus.values, 0)
    by_kind: dict[str, int] = {}
    counted_until = run_counts_until()
    counted = RunCount.objects.all() if sees_everyones(user, JobRun) else RunCount.objects.filter(owner=user)
    ended_since = runs.filter(status__in=FINISHED_STATUSES)
    if counted_until is not None:
        ended_since = ended_since.filter(finished_at__gte=counted_until)
    else:
        counted = counted.none()
    parts = [counted.values_list("kind", "status").annotate(n=Sum("runs")),
             ended_since.values_list("kind", "status").annotate(n=Count("id")),
             runs.filter(status__in=UNFINISHED_STATUSES).values_list("kind", "status").annotate(n=Count("id"))]
    for part in parts:
        for kind, status, n in part.order_by():
            by_status[status] = by_status.get(status, 0) + n
            by_kind[kind] = by_kind.get(kind, 0) + n
    return by_status, by_kind


def _own_waiting_by_queue(runs: QuerySet[JobRun]) -> dict[str, int]:
    waiting = dict(runs.filter(status__in=(RunStatus.QUEUED, RunStatus.RETRY)).values_list("queue")
                   .annotate(n=Count("id")).order_by())
    return {queue: waiting.get(queue, 0) for queue in queues_all()}


def runs_last_day_by_status() -> dict[str, int]:
    since = timezone.now() - timedelta(hours=24)
    counts = dict(JobRun.objects.filter(created_at__gte=since).values_list("status").annotate(n=Count("id")).order_by())
    return {status: counts.get(status, 0) for status in RunStatus.values}


def runs_dead_latest(*, limit: int = 10) -> QuerySet[JobRun]:
    return JobRun.objects.dead_letters().order_by("-finished_at")[:limit]

