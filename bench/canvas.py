"""A Celery group of tracked runs against a Celery group of plain tasks that keep their results in
the database (django-celery-results, extended), side by side on the same Redis, PostgreSQL and
worker, in interleaved rounds: from `group(…).apply_async()` to `.get()` returning every result.
Then chords of tracked runs: how soon the body starts after the last header run ended.

    python bench/canvas.py [--rounds 5] [--size 100] [--concurrency 2] [--chords 30] [--chord-size 10]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("DEBUG", "false")

import django  # noqa: E402

django.setup()

from celery import group  # noqa: E402
from django.conf import settings  # noqa: E402

from bench.noop_tasks import results_noop, tracked_noop  # noqa: E402
from bench.support import bench_options, percentile, start_worker, stop_worker  # noqa: E402
from jobs.models import JobRun  # noqa: E402

BENCH_QUEUE = "bench"
# Declared for this process only, as a deployment would declare a queue of its own: a tracked
# task's queue= must be one a worker serves (jobs.calls).
settings.CELERY_TASK_QUEUES = {**settings.CELERY_TASK_QUEUES,
                               BENCH_QUEUE: {"exchange": BENCH_QUEUE, "routing_key": BENCH_QUEUE}}


def plain(size: int) -> float:
    started = time.perf_counter()
    results = group(results_noop.s() for _ in range(size)).apply_async(queue=BENCH_QUEUE)
    results.get(timeout=120, interval=0.01)
    return time.perf_counter() - started


def tracked(size: int) -> float:
    started = time.perf_counter()
    results = group(tracked_noop.s() for _ in range(size)).apply_async(queue=BENCH_QUEUE)
    results.get(timeout=120, interval=0.01)
    return time.perf_counter() - started


def chord_body_start(size: int) -> float:
    """Milliseconds from the last header run's end to its chord body's start (both the database's times)."""
    from celery import chord

    result = chord([tracked_noop.si() for _ in range(size)], tracked_noop.si()).apply_async(queue=BENCH_QUEUE)
    result.get(timeout=120, interval=0.01)
    body = JobRun.objects.get(id=result.id)
    last_header_end = max(JobRun.objects.filter(id__in=[r.id for r in result.parent.results])
                          .values_list("finished_at", flat=True))
    return (body.started_at - last_header_end).total_seconds() * 1000


def main() -> None:
    options = bench_options(rounds=5, size=100, concurrency=2, chords=30, chord_size=10)
    worker = start_worker(queues=BENCH_QUEUE, concurrency=options.concurrency, include="bench.noop_tasks",
                          name="bench-canvas")
    seconds: dict[str, list[float]] = {"plain": [], "tracked": []}
    try:
        plain(10), tracked(10)  # warm both paths
        for round_number in range(options.rounds):
            order = ("plain", "tracked") if round_number % 2 == 0 else ("tracked", "plain")
            for name in order:
                took = (plain if name == "plain" else tracked)(options.size)
                seconds[name].append(took)
                print(f"round {round_number + 1}, {name:<8} group of {options.size}: {took * 1000:7.1f} ms "
                      f"({options.size / took:6.1f} tasks/s)", flush=True)
        starts = [chord_body_start(options.chord_size) for _ in range(options.chords)]
    finally:
        stop_worker(worker)
        JobRun.objects.filter(kind="bench.tracked_noop").delete()
    ratios = [p / t for p, t in zip(seconds["plain"], seconds["tracked"])]
    print(f"\ngroup of {options.size}, apply_async to .get(), {options.rounds} interleaved rounds "
          f"(concurrency {options.concurrency})")
    print("Celery + results: " + " / ".join(f"{options.size / s:.1f}" for s in seconds["plain"]) + " tasks/s")
    print("tracked runs:     " + " / ".join(f"{options.size / s:.1f}" for s in seconds["tracked"]) + " tasks/s")
    print("ratio (tracked throughput / plain): " + " / ".join(f"{r:.2f}" for r in ratios)
          + f"  (target ≥ 0.8: met in {sum(r >= 0.8 for r in ratios)} of {len(ratios)})")
    print(f"\nchord body's start after its last header run's end, {options.chords} chords of {options.chord_size}: "
          f"p50 {percentile(starts, 0.5):.1f} ms, p90 {percentile(starts, 0.9):.1f} ms, max {max(starts):.1f} ms "
          f"(target p50 ≤ 100 ms)")


if __name__ == "__main__":
    main()
