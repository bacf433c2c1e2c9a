"""What durable runs cost: a step kept per run, and an ingestion that commits its embeddings in
checkpointed batches, each against the same work without them, side by side in one run.

- tracked no-op runs against tracked runs that keep one step (`ctx.step`: one more write, in the
  attempt's lease) on the same worker;
- the ingestion pipeline in this process (kept text, pending chunks, a checkpoint every
  INGEST_COMMIT_CHUNKS embeddings, the final swap) against raw `model.encode` of the same chunks.

    python bench/checkpoints.py [--tasks 500] [--chunks 400] [--rounds 3]
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

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import transaction  # noqa: E402

from bench.ingest import bench_pipeline  # noqa: E402
from bench.support import bench_options, start_worker, stop_worker  # noqa: E402
from documents.models import Document  # noqa: E402
from jobs.models import JobRun  # noqa: E402
from jobs.services.runs import run_enqueue  # noqa: E402

BENCH_QUEUE = "bench"


def tracked(kind: str, n: int) -> float:
    JobRun.objects.filter(kind=kind).delete()  # so the count below sees only this batch
    started = time.perf_counter()
    for _ in range(n):
        with transaction.atomic():
            run_enqueue(kind=kind, queue=BENCH_QUEUE)
    while JobRun.objects.filter(kind=kind, status="SUCCESS").count() < n:
        time.sleep(0.01)
    return n / (time.perf_counter() - started)


def main() -> None:
    options = bench_options(tasks=500, chunks=400, rounds=3)

    import bench.noop_tasks  # noqa: F401  (registers the kinds in this process)

    worker = start_worker(queues=BENCH_QUEUE, concurrency=2, include="bench.noop_tasks")
    rates: dict[str, list[float]] = {"bench.tracked_noop": [], "bench.tracked_step": []}
    try:
        tracked("bench.tracked_noop", 50), tracked("bench.tracked_step", 50)  # warm both paths
        for _ in range(options.rounds):  # interleaved, so a busy moment weighs on both
            for kind in rates:
                rates[kind].append(tracked(kind, options.tasks))
    finally:
        stop_worker(worker)
    user, _ = get_user_model().objects.get_or_create(username="bench-checkpoints")
    pipelines = []
    for _ in range(options.rounds):
        Document.objects.filter(owner=user).delete()  # the same file again is a new ingestion
        pipelines.append(bench_pipeline(user, options.chunks))
    Document.objects.filter(owner=user).delete()

    print(f"tracked runs, {options.tasks} per round, worker concurrency 2, {options.rounds} rounds")
    for n, (plain, stepped) in enumerate(zip(rates["bench.tracked_noop"], rates["bench.tracked_step"]), start=1):
        print(f"  round {n}: no-op {plain:7.1f}/s, one step kept {stepped:7.1f}/s, ratio {stepped / plain:.2f}")
    print(f"ingestion of {pipelines[0]['chunks']} chunks, in this process, {options.rounds} rounds")
    for n, p in enumerate(pipelines, start=1):
        print(f"  round {n}: raw model.encode {p['raw']:6.1f} chunks/s, pipeline with checkpoints "
              f"{p['pipeline']:6.1f} chunks/s, ratio {p['pipeline'] / p['raw']:.2f}  (target >= 0.85)")


if __name__ == "__main__":
    main()
