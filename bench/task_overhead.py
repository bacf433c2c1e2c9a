"""Tracked runs against the ways Django projects usually run background work, side by side on the same
Redis and PostgreSQL, two worker processes each, in interleaved rounds:

- bare Celery: `ignore_result`, no database at all;
- Celery + django-celery-results: `track_started`, extended results (a STARTED and a SUCCESS row write);
- django-q2 (installed by `make bench`, bench/requirements.txt): its cluster with 2 workers on Redis,
  results saved as it saves them by default;
- tracked runs: a JobRun per task (insert, claim, outcome and its TaskResult in one statement).

Three work sizes (no-op tasks, 50 ms and 1 s of work each), throughput from the first enqueue to the
last completion, and each enqueue's latency from this process (the tracked one as a view calls the
service: the run's INSERT its own transaction, then the publish). Then rows written per task
(inserted, updated or deleted in any table, from pg_stat_user_tables) for Celery + results and
tracked runs.

    python bench/task_overhead.py [--rounds 3] [--tasks 1000] [--working-tasks 200] [--slow-tasks 100]
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench.peers_settings"
# As in production, for all four and their workers: DEBUG keeps every query in memory and costs a
# tracked no-op run 0.4 ms of CPU in the worker alone.
os.environ.setdefault("DEBUG", "false")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import DatabaseError, connection  # noqa: E402

from bench.noop_tasks import bare_noop, results_noop  # noqa: E402  (and registers the tracked kind)
from bench.support import bench_options, percentile, start_worker, stop_worker  # noqa: E402
from jobs.models import JobRun  # noqa: E402
from jobs.services.runs import run_enqueue  # noqa: E402
from project.celery import app  # noqa: E402

BENCH_QUEUE = "bench"
SYSTEMS = ("bare", "results", "q2", "tracked")
LABELS = {"bare": "bare Celery", "results": "Celery + results", "q2": "django-q2", "tracked": "tracked runs"}


def _redis():
    return app.connection_for_write().default_channel.client


def _timed(enqueue, n: int) -> list[float]:
    """Call `enqueue` n times; each call's latency in ms."""
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        enqueue()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _settled(*tables: str) -> None:
    """The database as every batch finds it: what the last batch deleted and updated cleaned, and a
    checkpoint just made, so that PostgreSQL's own upkeep (autovacuum at its next tick; a timed
    checkpoint, after which the first write to each page logs the whole page) does not land inside
    whichever batch runs then. CHECKPOINT needs a superuser (or pg_checkpoint); without, batches
    are timed as they come."""
    with connection.cursor() as cursor:
        if tables:
            cursor.execute(f"VACUUM {', '.join(tables)}")
        try:
            cursor.execute("CHECKPOINT")
        except DatabaseError:
            pass


def _wait(done, n: int, started: float) -> float:
    while done() < n:
        time.sleep(0.01)
    return n / (time.perf_counter() - started)


def bare(n: int, work_ms: float) -> tuple[float, list[float]]:
    counter = "bench:bare:done"
    _redis().delete(counter)
    _settled()
    started = time.perf_counter()
    latencies = _timed(lambda: bare_noop.apply_async(kwargs={"counter": counter, "work_ms": work_ms}, queue=BENCH_QUEUE), n)
    return _wait(lambda: int(_redis().get(counter) or 0), n, started), latencies


def results(n: int, work_ms: float) -> tuple[float, list[float]]:
    from django_celery_results.models import TaskResult

    TaskResult.objects.filter(task_name="bench.results_noop").delete()
    _settled("django_celery_results_taskresult")
    started = time.perf_counter()
    latencies = _timed(lambda: results_noop.apply_async(kwargs={"work_ms": work_ms}, queue=BENCH_QUEUE), n)
    done = TaskResult.objects.filter(task_name="bench.results_noop", status="SUCCESS")
    return _wait(done.count, n, started), latencies


def q2(n: int, work_ms: float) -> tuple[float, list[float]]:
    """Done when django-q2 has saved the result, as the other two that keep records are."""
    from django_q.models import Task
    from django_q.tasks import async_task

    Task.objects.filter(group="bench").delete()
    _settled("django_q_task")
    started = time.perf_counter()
    latencies = _timed(lambda: async_task("bench.noop_tasks.q2_noop", work_ms, group="bench"), n)
    return _wait(Task.objects.filter(group="bench", success=True).count, n, started), latencies


def tracked(n: int, work_ms: float) -> tuple[float, list[float]]:
    JobRun.objects.filter(kind="bench.tracked_noop").delete()  # so the count below sees only this batch
    _settled("jobs_jobrun", "django_celery_results_taskresult")

    def enqueue():
        run_enqueue(kind="bench.tracked_noop", queue=BENCH_QUEUE, args={"work_ms": work_ms} if work_ms else None)

    started = time.perf_counter()
    latencies = _timed(enqueue, n)
    done = JobRun.objects.filter(kind="bench.tracked_noop", status="SUCCESS")
    return _wait(done.count, n, started), latencies


RUNNERS = {"bare": bare, "results": results, "q2": q2, "tracked": tracked}


def writes_so_far() -> int:
    """Rows inserted, updated or deleted in every table of this database, as PostgreSQL counts them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables")
        return int(cursor.fetchone()[0])


def rows_per_task(run, n: int) -> float:
    """pg_stat: a busy backend reports its row counts within 1 s, an idle one only after 10 s, so
    wait until earlier phases have reported before the baseline."""
    time.sleep(11)
    before = writes_so_far()
    run(n, 0)
    time.sleep(11)
    return (writes_so_far() - before) / n


def start_q2_cluster() -> subprocess.Popen:
    log = open(BASE_DIR / ".local" / "bench-q2-cluster.log", "ab")
    proc = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=BASE_DIR, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ))
    q2(1, 0)  # answers once the cluster takes work
    return proc


def stop_q2_cluster(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:  # its sentinel waits on workers that may never answer
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    options = bench_options(rounds=3, tasks=1000, working_tasks=200, work_ms=50.0, slow_tasks=100, slow_ms=1000.0,
                            concurrency=2, rows=1)
    sizes = [("no-op", options.tasks, 0.0), (f"{options.work_ms:.0f} ms", options.working_tasks, options.work_ms),
             (f"{options.slow_ms / 1000:.0f} s", options.slow_tasks, options.slow_ms)]
    logging.getLogger("django-q").setLevel(logging.WARNING)  # a line per task enqueued, otherwise
    call_command("migrate", "django_q", verbosity=0)
    with connection.cursor() as cursor:  # what earlier benchmarks deleted stays out of the counts' way
        cursor.execute("VACUUM ANALYZE jobs_jobrun")
        cursor.execute("VACUUM ANALYZE django_celery_results_taskresult")
    worker = start_worker(queues=BENCH_QUEUE, concurrency=options.concurrency, include="bench.noop_tasks")
    cluster = start_q2_cluster()
    rates: dict[tuple[str, str], list[float]] = {}
    latencies: dict[str, list[float]] = {system: [] for system in SYSTEMS}
    rows = {}
    try:
        for system in SYSTEMS:
            RUNNERS[system](50, 0)  # warm every path
        for round_number in range(options.rounds):
            # Each round in another order, so that no system always follows the same one.
            order = SYSTEMS[round_number % len(SYSTEMS):] + SYSTEMS[:round_number % len(SYSTEMS)]
            for size, n, work_ms in sizes:
                for system in order:
                    rate, enqueued = RUNNERS[system](n, work_ms)
                    rates.setdefault((size, system), []).append(rate)
                    if not work_ms:
                        latencies[system] += enqueued
                    print(f"round {round_number + 1}, {size:>6}, {LABELS[system]:<17} {rate:7.1f} tasks/s", flush=True)
        if options.rows:
            rows = {system: rows_per_task(RUNNERS[system], 500) for system in ("results", "tracked")}
        JobRun.objects.filter(kind="bench.tracked_noop").delete()
    finally:
        stop_worker(worker)
        stop_q2_cluster(cluster)

    print(f"\ntasks/s per round (concurrency {options.concurrency}; {options.rounds} interleaved rounds), "
          "and tracked runs' ratio to each")
    verdicts = []
    for size, n, _ in sizes:
        cells = "  ".join(f"{LABELS[s]} {'/'.join(f'{r:.1f}' for r in rates[(size, s)])}" for s in SYSTEMS)
        print(f"{size:>6} × {n}: {cells}")
        for peer, target in (("bare", 0.6 if size == "no-op" else 0.9 if size == sizes[1][0] else None),
                             ("q2", 1.0), ("results", None)):
            ratios = [t / p for t, p in zip(rates[(size, "tracked")], rates[(size, peer)])]
            met = sum(ratio >= target for ratio in ratios) if target else None
            verdict = f"target >= {target}: met in {met} of {len(ratios)} rounds" if target else ""
            print(f"         tracked / {LABELS[peer]:<17} {' '.join(f'{r:.2f}' for r in ratios)}  {verdict}")
            if target:
                verdicts.append(met * 3 >= 2 * len(ratios))
    print("\nenqueue latency from this process, no-op rounds, ms p50 / p99:")
    for system in SYSTEMS:
        values = latencies[system]
        print(f"  {LABELS[system]:<17} {percentile(values, 0.5):6.2f} / {percentile(values, 0.99):6.2f}")
    ratio = percentile(latencies["tracked"], 0.5) / percentile(latencies["bare"], 0.5)
    print(f"  tracked p50 / Celery's apply_async p50: {ratio:.2f} (target <= 2.0: {'met' if ratio <= 2 else 'NOT met'})")
    verdicts.append(ratio <= 2)
    if rows:
        print(f"\nrows written per task: Celery + results {rows['results']:.2f}, tracked {rows['tracked']:.2f} "
              "(a tracked run: the insert, the claim, the outcome and its TaskResult in one statement)")
    print("all targets met in at least two of three rounds" if all(verdicts) else "some targets NOT met")


if __name__ == "__main__":
    main()
