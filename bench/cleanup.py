"""What retention cleanup costs: `runs_cleanup` (what the nightly jobs.cleanup_runs calls: batches
of CLEANUP_BATCH_SIZE through Django's delete, every related row handled, the tallies folded first)
against the floor, plain batched `DELETE … WHERE id IN (SELECT … LIMIT n)` statements of the same
size on an identical set of old runs, side by side and interleaved. Prints runs/s of each, the
ratio, and how much this process's resident memory grew while deleting.

    python bench/cleanup.py [--runs 50000] [--rounds 2]
"""

from __future__ import annotations

import os
import sys
import time
from datetime import timedelta
from pathlib import Path

# Run as a script: the project's packages are found from the checkout, with `make run`'s settings.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
import django  # noqa: E402

django.setup()
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.support import bench_options  # noqa: E402
from jobs.models import JobRun, JobRunLogEntry, RunStatus  # noqa: E402
from jobs.services.maintenance import CLEANUP_BATCH_SIZE, runs_cleanup  # noqa: E402

KIND = "bench.cleanup"
# Filled in slices, so filling never holds a large list of objects either.
FILL_BATCH = 5000


def fill(n: int) -> None:
    """`n` runs that ended a year ago, each with one log line, as the nightly cleanup finds them."""
    ended = timezone.now() - timedelta(days=365)
    for start in range(0, n, FILL_BATCH):
        runs = JobRun.objects.bulk_create([
            JobRun(kind=KIND, queue="bench", status=RunStatus.SUCCESS, attempts=1, created_at=ended,
                   started_at=ended, finished_at=ended, args={"n": start + i}, result={"ok": True},
                   attempt_log=[], progress_current=1, progress_total=1)
            for i in range(min(FILL_BATCH, n - start))])
        JobRunLogEntry.objects.bulk_create([JobRunLogEntry(run=run, message="done") for run in runs])


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def ours(n: int) -> tuple[float, float]:
    fill(n)
    before = rss_mib()
    started = time.perf_counter()
    deleted = runs_cleanup(older_than_days=30, dead_older_than_days=30)["runs"]
    seconds = time.perf_counter() - started
    assert deleted >= n, deleted
    return n / seconds, rss_mib() - before


def floor(n: int) -> tuple[float, float]:
    fill(n)
    before = rss_mib()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        while True:
            cursor.execute("DELETE FROM jobs_jobrunlogentry WHERE run_id IN (SELECT id FROM jobs_jobrun WHERE kind = %s "
                           "ORDER BY finished_at LIMIT %s)", [KIND, CLEANUP_BATCH_SIZE])
            cursor.execute("DELETE FROM jobs_jobrun WHERE id IN (SELECT id FROM jobs_jobrun WHERE kind = %s "
                           "ORDER BY finished_at LIMIT %s)", [KIND, CLEANUP_BATCH_SIZE])
            if cursor.rowcount == 0:
                break
    return n / (time.perf_counter() - started), rss_mib() - before


def main() -> None:
    options = bench_options(runs=50000, rounds=2)
    JobRun.objects.filter(kind=KIND).delete()
    figures: dict[str, list[tuple[float, float]]] = {"floor": [], "ours": []}
    for _ in range(options.rounds):  # interleaved, so a busy moment weighs on both
        figures["floor"].append(floor(options.runs))
        figures["ours"].append(ours(options.runs))
    for name, rounds in figures.items():
        rates = ", ".join(f"{rate:.0f}" for rate, _ in rounds)
        growth = max(grown for _, grown in rounds)
        print(f"{name:>5}: {rates} runs/s; memory grew by up to {growth:.0f} MiB")
    ratio = [o[0] / f[0] for o, f in zip(figures["ours"], figures["floor"])]
    print(f"ours / floor: {', '.join(f'{r:.2f}' for r in ratio)} (batches of {CLEANUP_BATCH_SIZE})")


if __name__ == "__main__":
    main()
