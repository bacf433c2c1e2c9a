"""Tracked runs against Celery as it is usually run, side by side, same Redis, same worker, one run:

- bare Celery: `ignore_result`, no database at all;
- Celery + django-celery-results: `track_started`, extended results (a STARTED and a SUCCESS row write);
- tracked runs: a JobRun per task (insert, claim, outcome and its TaskResult in one statement).

Prints throughputs (tasks/s, enqueue to last completion), ratios, and rows written per task (inserted,
updated or deleted in any table, from pg_stat_user_tables). A tracked run writes four rows in three
commits: the run at enqueue, the claim, and the outcome with its TaskResult row in one statement.

    python bench/task_overhead.py [--tasks 500] [--concurrency 2]
"""

from __future__ import annotations

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

from bench.support import bench_options, start_worker, stop_worker  # noqa: E402
from jobs.models import JobRun  # noqa: E402
from jobs.services.runs import run_enqueue  # noqa: E402
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


def with_results(n: int, work_ms: float = 0) -> float:
    from django_celery_results.models import TaskResult

    TaskResult.objects.filter(task_name="bench.results_noop").delete()
    started = time.perf_counter()
    for _ in range(n):
        app.send_task("bench.results_noop", queue=BENCH_QUEUE, kwargs={"work_ms": work_ms})
    while TaskResult.objects.filter(task_name="bench.results_noop", status="SUCCESS").count() < n:
        time.sleep(0.01)
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


def measured(run, n: int) -> tuple[float, float]:
    """(tasks/s, database writes per task). pg_stat: a busy backend reports its row counts within
    1 s, an idle one only after 10 s, so wait until earlier phases have reported before the baseline."""
    time.sleep(11)
    before = writes_so_far()
    rate = run(n)
    time.sleep(11)
    return rate, (writes_so_far() - before) / n


def main() -> None:
    options = bench_options(tasks=500, concurrency=2, work_ms=50.0)

    worker = start_worker(queues=BENCH_QUEUE, concurrency=options.concurrency, include="bench.noop_tasks")
    try:
        import bench.noop_tasks  # noqa: F401  (registers the kind in this process)

        bare(50), with_results(50), tracked(50)  # warm every path
        working = options.tasks // 5
        work = {}
        if options.work_ms:
            work = {name: run(working, options.work_ms)
                    for name, run in (("bare", bare), ("results", with_results), ("tracked", tracked))}
        JobRun.objects.filter(kind="bench.tracked_noop").delete()
        bare_rate, bare_writes = measured(bare, options.tasks)
        results_rate, results_writes = measured(with_results, options.tasks)
        tracked_rate, tracked_writes = measured(tracked, options.tasks)
    finally:
        stop_worker(worker)
    print(f"no-op tasks: {options.tasks}, worker concurrency: {options.concurrency}")
    print(f"{'':34}{'tasks/s':>10}{'rows written/task':>19}")
    print(f"{'bare Celery (ignore_result)':34}{bare_rate:10.1f}{bare_writes:19.2f}")
    print(f"{'Celery + django-celery-results':34}{results_rate:10.1f}{results_writes:19.2f}")
    print(f"{'tracked runs':34}{tracked_rate:10.1f}{tracked_writes:19.2f}")
    print(f"ratio tracked / Celery + results: {tracked_rate / results_rate:6.2f}  (target >= 1.2)")
    print(f"ratio tracked / bare Celery:      {tracked_rate / bare_rate:6.2f}  (target >= 0.5)")
    if work:
        print(f"with {options.work_ms:.0f} ms of work per task ({working} tasks): bare {work['bare']:.1f}, "
              f"Celery + results {work['results']:.1f}, tracked {work['tracked']:.1f} tasks/s; "
              f"tracked / bare {work['tracked'] / work['bare']:.2f}")


if __name__ == "__main__":
    main()
