"""How many runs there are by status and kind, without reading every run on each request.

Ended runs do not change, so they are counted in the background (by owner, kind and status, up to
a moment a little in the past) and kept in RunCount; the run stats add, live, the runs still
waiting or running and those ended since that moment, both read off partial indexes. The counts
are exact, except that runs deleted (cleanup, a user's removal) stay counted until the next
recount, at most RUN_COUNTS_EVERY_SECONDS later.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from jobs.models import FINISHED_STATUSES, RunCount
from jobs.services.tallies import FOLD_LAG_SECONDS

logger = logging.getLogger(__name__)

# A recount reads every ended run (an index-only scan: about half a second at a million runs), so
# it runs this often at most; the runs ended since the last one are counted live meanwhile.
RUN_COUNTS_EVERY_SECONDS = 300
# Two recounts at once would each replace the other's rows: one waits for the other.
_RECOUNT_LOCK = 0x72756E63  # "runc"

_FINISHED_SQL = "(" + ", ".join(f"'{s.value}'" for s in FINISHED_STATUSES) + ")"
_RECOUNT_SQL = f"""
INSERT INTO jobs_runcount (owner_id, kind, status, runs, counted_until)
SELECT owner_id, kind, status, count(*), %(until)s
  FROM jobs_jobrun
 WHERE status IN {_FINISHED_SQL} AND finished_at < %(until)s
 GROUP BY owner_id, kind, status
"""


def run_counts_refresh(*, force: bool = False) -> bool:
    """Recount the ended runs up to FOLD_LAG_SECONDS ago (an end is committed by then), if the last
    recount is older than RUN_COUNTS_EVERY_SECONDS or `force`. True if it recounted."""
    started = time.monotonic()
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_RECOUNT_LOCK])
        last = run_counts_until()
        if not force and last is not None and now - last < timedelta(seconds=RUN_COUNTS_EVERY_SECONDS + FOLD_LAG_SECONDS):
            return False
        until = now - timedelta(seconds=FOLD_LAG_SECONDS)
        RunCount.objects.all().delete()
        with connection.cursor() as cursor:
            cursor.execute(_RECOUNT_SQL, {"until": until})
            rows = cursor.rowcount
    logger.info("ended runs recounted", extra={"rows": rows, "seconds": round(time.monotonic() - started, 3)})
    return True


def run_counts_until():
    """Up to when ended runs are counted in RunCount (None before the first recount)."""
    return RunCount.objects.order_by().values_list("counted_until", flat=True).first()
