"""Counts of ended runs that only grow: what /metrics exposes as Prometheus counters and histograms.

The runs table holds every execution, but cleanup deletes old runs, and a counter computed from
what is left would fall. So ended runs are folded, once, into RunTally rows (by kind and status)
up to a mark that only moves forward; a scrape reads the tallies plus the runs ended since the
mark, in one statement (one snapshot), and never writes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from itertools import zip_longest

from django.db import connection, transaction
from django.utils import timezone

from jobs.models import FINISHED_STATUSES, RunTally, RunTallyMark

logger = logging.getLogger(__name__)

# Seconds: from sub-second chat replies to quarter-hour ingestions. Changing the bounds needs the
# tallies reset (a migration): each row's bucket counts are per bound.
DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)
# Seconds a run waited between being accepted and its first start.
QUEUE_WAIT_BUCKETS = (0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# A run is folded only once it ended this long ago: its end is then long committed (an outcome's
# transaction takes milliseconds), and a worker's clock a few minutes behind still lands after
# the mark.
FOLD_LAG_SECONDS = 300
_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


@dataclass
class Tally:
    """Ended runs of one kind and status, as the metrics need them."""

    ended: int = 0
    started: int = 0
    duration_seconds_sum: float = 0.0
    duration_buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    queue_wait_seconds_sum: float = 0.0
    queue_wait_buckets: list[int] = field(default_factory=lambda: [0] * len(QUEUE_WAIT_BUCKETS))

    def add(self, other: Tally) -> None:
        self.ended += other.ended
        self.started += other.started
        self.duration_seconds_sum += other.duration_seconds_sum
        self.queue_wait_seconds_sum += other.queue_wait_seconds_sum
        # A row not counted yet has no buckets: missing counts are 0.
        self.duration_buckets = [a + b for a, b in zip_longest(self.duration_buckets, other.duration_buckets,
                                                               fillvalue=0)]
        self.queue_wait_buckets = [a + b for a, b in zip_longest(self.queue_wait_buckets, other.queue_wait_buckets,
                                                                 fillvalue=0)]


_TALLY_FIELDS = [f.name for f in fields(Tally)]  # the same names on RunTally


def _buckets_sql(column: str, bounds: tuple) -> str:
    return "ARRAY[" + ", ".join(f"count(*) FILTER (WHERE {column} <= {float(b)})" for b in bounds) + "]::bigint[]"


_FINISHED_SQL = "(" + ", ".join(f"'{s.value}'" for s in FINISHED_STATUSES) + ")"
_MARK_SQL = f"(SELECT coalesce(max(folded_until), '{_EPOCH.isoformat()}'::timestamptz) FROM jobs_runtallymark)"


def _ended_sql(*, since: str, until: str) -> str:
    """Ended runs aggregated by kind and status, finished_at in [since, until): SQL expressions
    of our own (parameters, the mark's subquery), never a value."""
    return f"""
    SELECT kind, status, count(*), count(duration), coalesce(sum(duration), 0),
           {_buckets_sql("duration", DURATION_BUCKETS)}, coalesce(sum(wait), 0),
           {_buckets_sql("wait", QUEUE_WAIT_BUCKETS)}
      FROM (SELECT kind, status, extract(epoch FROM finished_at - started_at) AS duration,
                   extract(epoch FROM started_at - created_at) AS wait
              FROM jobs_jobrun
             WHERE status IN {_FINISHED_SQL} AND finished_at >= {since} AND finished_at < {until}) ended
     GROUP BY kind, status"""


_FOLD_SQL = _ended_sql(since="%(since)s", until="%(until)s")
# The tallies and the runs ended since the mark, in one statement: one snapshot, so a fold that
# commits meanwhile is seen either wholly or not at all.
_READ_SQL = f"""
    SELECT kind, status, ended, started, duration_seconds_sum, duration_buckets, queue_wait_seconds_sum,
           queue_wait_buckets
      FROM jobs_runtally
    UNION ALL {_ended_sql(since=_MARK_SQL, until="'infinity'::timestamptz")}"""


def _rows_to_tallies(rows) -> dict[tuple[str, str], Tally]:
    tallies: dict[tuple[str, str], Tally] = {}
    for kind, status, ended, started, duration_sum, duration_buckets, wait_sum, wait_buckets in rows:
        tallies.setdefault((kind, status), Tally()).add(Tally(
            ended=ended, started=started, duration_seconds_sum=float(duration_sum),
            duration_buckets=list(duration_buckets), queue_wait_seconds_sum=float(wait_sum),
            queue_wait_buckets=list(wait_buckets)))
    return tallies


def run_tallies_read() -> dict[tuple[str, str], Tally]:
    """{(kind, status): Tally} over every run that ever ended (cleaned up or not)."""
    with connection.cursor() as cursor:
        cursor.execute(_READ_SQL)
        return _rows_to_tallies(cursor.fetchall())


def run_tallies_fold(*, now: datetime | None = None) -> datetime:
    """Fold the runs that ended before now - FOLD_LAG_SECONDS into the tallies; returns the mark.
    Concurrent folds wait for each other on the mark's row, so no run is counted twice."""
    started = time.monotonic()
    until = (now or timezone.now()) - timedelta(seconds=FOLD_LAG_SECONDS)
    with transaction.atomic():
        mark = RunTallyMark.objects.select_for_update().filter(id=1).first()
        if mark is None:
            # Two first folds at once: one inserts, the other's insert does nothing and it waits.
            RunTallyMark.objects.bulk_create([RunTallyMark(id=1, folded_until=_EPOCH)], ignore_conflicts=True)
            mark = RunTallyMark.objects.select_for_update().get(id=1)
        if until <= mark.folded_until:
            return mark.folded_until
        with connection.cursor() as cursor:
            cursor.execute(_FOLD_SQL, {"since": mark.folded_until, "until": until})
            fresh = _rows_to_tallies(cursor.fetchall())
        existing = {(t.kind, t.status): t for t in RunTally.objects.filter(
            kind__in={kind for kind, _ in fresh}).select_for_update()}
        for (kind, status), counted in fresh.items():
            row = existing.get((kind, status)) or RunTally(kind=kind, status=status)
            total = Tally(**{name: getattr(row, name) for name in _TALLY_FIELDS})
            total.add(counted)
            for name in _TALLY_FIELDS:
                setattr(row, name, getattr(total, name))
            row.save()
        mark.folded_until = until
        mark.save(update_fields=["folded_until"])
    if fresh:
        logger.info("ended runs folded into the tallies", extra={
            "kinds": len({kind for kind, _ in fresh}), "runs": sum(t.ended for t in fresh.values()),
            "seconds": round(time.monotonic() - started, 3)})
    return until
