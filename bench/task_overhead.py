"""Tracked runs against bare Celery tasks: same Redis, same worker flags, in one run.

Prints both throughputs (tasks/s, enqueue to last completion), their ratio, and the
database writes per tracked task (rows inserted, updated or deleted, from pg_stat_database).

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
    with connection.cursor() as cursor:
        cursor.execute("SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def bare(n: int) -> float:
    counter = "bench:bare:done"
    client = app.connection_for_write().default_channel.client
    client.delete(counter)
    started = time.perf_counter()
    for _ in range(n):
        app.send_task("bench.bare_noop", queue=BENCH_QUEUE, kwargs={"counter": counter})
    while int(client.get(counter) or 0) < n:
        time.sleep(0.005)
    return n / (time.perf_counter() - started)


def tracked(n: int) -> tuple[float, float]:
    JobRun.objects.filter(kind="bench.tracked_noop").delete()
    time.sleep(1.0)  # let pg_stat settle from the delete
    before = writes_so_far()
    started = time.perf_counter()
    for _ in range(n):
        with transaction.atomic():
            run_enqueue(kind="bench.tracked_noop", queue=BENCH_QUEUE)
    while JobRun.objects.filter(kind="bench.tracked_noop", status="SUCCESS").count() < n:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    time.sleep(1.0)  # pg_stat counters are flushed asynchronously
    return n / elapsed, (writes_so_far() - before) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=2)
    options = parser.parse_args()

    worker = start_worker(queues=BENCH_QUEUE, concurrency=options.concurrency, include="bench.noop_tasks")
    try:
        import bench.noop_tasks  # noqa: F401  (registers the kind in this process)

        bare(50), tracked(50)  # warm both paths
        bare_rate = bare(options.tasks)
        tracked_rate, writes = tracked(options.tasks)
    finally:
        stop_worker(worker)
    print(f"tasks: {options.tasks}, worker concurrency: {options.concurrency}")
    print(f"bare Celery (ignore_result): {bare_rate:8.1f} tasks/s")
    print(f"tracked runs:                {tracked_rate:8.1f} tasks/s")
    print(f"ratio tracked/bare:          {tracked_rate / bare_rate:8.2f}  (target >= 0.7)")
    print(f"database writes per tracked task: {writes:.2f}  (target <= 4)")


if __name__ == "__main__":
    main()
