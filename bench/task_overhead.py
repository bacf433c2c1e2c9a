"""Tracked runs against bare Celery tasks: same Redis, same worker flags, in one run.

Prints both throughputs (tasks/s, enqueue to last completion), their ratio, and the
database writes per tracked task (rows inserted, updated or deleted in any table, from pg_stat_user_tables).

    python bench/task_overhead.py [--tasks 500] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402

from bench.support import start_worker, stop_worker  # noqa: E402
from jobs.models import JobRun  # noqa: E402
from jobs.services import run_enqueue  # noqa: E402
from project.celery import app  # noqa: E402

BENCH_QUEUE = "bench"


def writes_so_far() -> int:
    """Rows inserted, updated or deleted in every table of this database, as PostgreSQL counts them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables")
        return int(cursor.fetchone()[0])


def bare(n: int, work_ms: float = 0) -> float:
    counter = "bench:bare:done"
    client = app.connection_for_write().default_channel.client
    client.delete(counter)
    started = time.perf_counter()
    for _ in range(n):
        app.send_task("bench.bare_noop", queue=BENCH_QUEUE, kwargs={"counter": counter, "work_ms": work_ms})
    while int(client.get(counter) or 0) < n:
        time.sleep(0.005)
    return n / (time.perf_counter() - started)


def tracked(n: int, work_ms: float = 0) -> float:
    JobRun.objects.filter(kind="bench.tracked_noop").delete()  # so the count below sees only this batch
    started = time.perf_counter()
    for _ in range(n):
        with transaction.atomic():
            run_enqueue(kind="bench.tracked_noop", queue=BENCH_QUEUE, args={"work_ms": work_ms} if work_ms else None)
    while JobRun.objects.filter(kind="bench.tracked_noop", status="SUCCESS").count() < n:
        time.sleep(0.01)
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--work-ms", type=float, default=50.0,
                        help="Also compare tasks that do this much work (sleep), to show the overhead in context.")
    options = parser.parse_args()

    worker = start_worker(queues=BENCH_QUEUE, concurrency=options.concurrency, include="bench.noop_tasks")
    try:
        import bench.noop_tasks  # noqa: F401  (registers the kind in this process)

        bare(50), tracked(50)  # warm both paths
        working = options.tasks // 5
        bare_work = bare(working, options.work_ms) if options.work_ms else None
        tracked_work = tracked(working, options.work_ms) if options.work_ms else None
        bare_rate = bare(options.tasks)
        JobRun.objects.filter(kind="bench.tracked_noop").delete()
        # pg_stat: a busy backend reports its row counts within 1 s, an idle one only after 10 s. Wait
        # until the worker's connections have reported the earlier phases before taking the baseline.
        time.sleep(11)
        before = writes_so_far()
        tracked_rate = tracked(options.tasks)
    finally:
        stop_worker(worker)
    # A backend reports its row counts to pg_stat when it ends or idles; the worker has ended now.
    time.sleep(1.5)
    writes = (writes_so_far() - before) / options.tasks
    print(f"tasks: {options.tasks}, worker concurrency: {options.concurrency}")
    print(f"bare Celery (ignore_result): {bare_rate:8.1f} tasks/s")
    print(f"tracked runs:                {tracked_rate:8.1f} tasks/s")
    print(f"ratio tracked/bare:          {tracked_rate / bare_rate:8.2f}  (target >= 0.7)")
    print(f"database writes per tracked task: {writes:.2f}  (target <= 4)")
    if bare_work:
        print(f"with {options.work_ms:.0f} ms of work per task ({working} tasks): bare {bare_work:.1f} tasks/s, "
              f"tracked {tracked_work:.1f} tasks/s, ratio {tracked_work / bare_work:.2f}")


if __name__ == "__main__":
    main()
