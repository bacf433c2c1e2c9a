"""Documents: pipeline speed against raw model.encode, search latency and recall, insert rate
against COPY, and the peak memory of a documents worker — all in one run.

    python bench/ingest.py [--chunks 400] [--sizes 10000,100000] [--queries 200]
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from bench.support import bench_options, ingest_here, percentile, raw_encode  # noqa: E402
from documents.models import Chunk, Document  # noqa: E402
from documents.pipeline.chunk import text_chunk  # noqa: E402
from documents.pipeline.embed import texts_embed  # noqa: E402
from documents.pipeline.extract import Page  # noqa: E402
from documents.services import document_upload  # noqa: E402
from documents.vector_store import vector_store  # noqa: E402

DIMENSIONS = 384
# Rows per COPY / bulk_create batch in the insert comparison (the pipeline's INDEX_BATCH_SIZE).
INSERT_BATCH = 500


def corpus_text(paragraphs: int) -> str:
    topics = ["harbour tides", "volcanic soil", "orbital mechanics", "sourdough baking", "bee colonies",
              "glacier retreat", "railway signalling", "medieval trade", "coral reefs", "wind turbines"]
    return "\n\n".join(
        f"Section {i} on {topics[i % len(topics)]}: observers recorded measurement {i * 7 % 101} near site "
        f"{i % 37}, noting how conditions changed over the season and what the crews did about it."
        for i in range(paragraphs)
    )


def bench_pipeline(user, chunks_wanted: int) -> dict:
    text = corpus_text(chunks_wanted * 2)
    chunks = text_chunk(pages=[Page(None, text)])
    texts = [c.text for c in chunks]
    texts_embed(texts[:64])  # the service's encoder loaded and run once, as a worker's warm-up does
    raw_encode(texts[:64])

    started = time.perf_counter()
    raw_encode(texts)
    raw = len(texts) / (time.perf_counter() - started)

    started = time.perf_counter()
    _, result = ingest_here(owner=user, name="bench.txt", data=text.encode())
    pipeline = result["chunks"] / (time.perf_counter() - started)
    return {"chunks": len(texts), "raw": raw, "pipeline": pipeline}


def unit_vectors(rng, n: int, centres: np.ndarray) -> np.ndarray:
    # Clustered like real embeddings (topics), not uniform noise.
    picks = centres[rng.integers(0, len(centres), n)]
    vectors = picks + rng.normal(scale=0.35, size=(n, DIMENSIONS)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def vector_literal(vector) -> str:
    return "[" + ",".join(f"{x:.6f}" for x in vector) + "]"


def insert_orm(document, vectors, start: int) -> float:
    rows = [Chunk(document=document, chunk_index=start + i, char_start=0, char_end=10, text=f"chunk {start + i}",
                  embedding=v) for i, v in enumerate(vectors)]
    started = time.perf_counter()
    with transaction.atomic():
        Chunk.objects.bulk_create(rows, batch_size=INSERT_BATCH)
    return len(rows) / (time.perf_counter() - started)


def insert_copy(document, vectors, start: int) -> float:
    buffer = io.StringIO()
    for i, vector in enumerate(vectors):
        buffer.write(f"{document.id}\t{start + i}\t0\t10\tchunk {start + i}\t{vector_literal(vector)}\n")
    data = buffer.getvalue()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.copy("COPY documents_chunk (document_id, chunk_index, char_start, char_end, text, embedding) "
                         "FROM STDIN") as copy:
            copy.write(data)
    return len(vectors) / (time.perf_counter() - started)


def bench_search(user, document, sizes: list[int], queries: int) -> tuple[list[dict], dict]:
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(200, DIMENSIONS)).astype(np.float32)
    results, insert_rates = [], {"orm": [], "copy": []}
    have = 0
    for size in sizes:
        while have < size:
            step = min(10_000, size - have)
            half = step // 2
            insert_rates["orm"].append(insert_orm(document, unit_vectors(rng, half, centres), have))
            insert_rates["copy"].append(insert_copy(document, unit_vectors(rng, step - half, centres), have + half))
            have += step
            print(f"  inserted {have}/{size} chunks", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE documents_chunk")
        probes = unit_vectors(rng, queries, centres)
        latencies, recalls = [], []
        for vector in probes:
            vector = vector.tolist()
            started = time.perf_counter()
            approximate = vector_store().nearest(owner_id=user.id, vector=vector, n=10)
            latencies.append((time.perf_counter() - started) * 1000)
            exact = vector_store().nearest(owner_id=user.id, vector=vector, n=10, exact=True)
            truth = {key for key, _ in exact}
            recalls.append(len(truth & {key for key, _ in approximate}) / max(1, len(truth)))
        results.append({"size": size, "p50": statistics.median(latencies), "p99": percentile(latencies, 0.99),
                        "recall": statistics.mean(recalls)})
    return results, {k: statistics.mean(v) for k, v in insert_rates.items()}


def bench_worker_memory(user) -> dict:
    """Peak memory of a documents worker while it ingests a document: the pool process's RSS, and the
    whole worker's PSS (shared pages counted once, so parent and forked child are not double-counted)."""
    import psutil

    from bench.support import start_worker, stop_worker
    from processes.workers import DOCUMENTS_MAX_MEMORY_KB

    # The same flags start_workers.sh gives the documents worker.
    worker = start_worker(queues="documents", concurrency=1, include="documents.tasks", name="bench-documents",
                          extra_args=("--max-memory-per-child", str(DOCUMENTS_MAX_MEMORY_KB)), env={"MALLOC_ARENA_MAX": "2"})
    peak_child = peak_total = 0
    try:
        with transaction.atomic():
            document, _ = document_upload(owner=user, upload=SimpleUploadedFile(
                "memory.txt", (corpus_text(1500) + " memory").encode()))
        main = psutil.Process(worker.pid)
        while Document.objects.get(id=document.id).status not in ("ready", "failed"):
            processes = [main, *main.children(recursive=True)]
            infos = [p.memory_full_info() for p in processes if p.is_running()]
            peak_total = max(peak_total, sum(info.pss for info in infos))
            peak_child = max(peak_child, max((info.rss for info in infos[1:]), default=0))
            time.sleep(0.05)
    finally:
        stop_worker(worker)
    return {"child_mb": peak_child / 2**20, "total_mb": peak_total / 2**20}


def main() -> None:
    options = bench_options(chunks=400, sizes="10000,100000", queries=200)

    user, _ = get_user_model().objects.get_or_create(username="bench-ingest")
    Document.objects.filter(owner=user).delete()
    try:
        pipeline = bench_pipeline(user, options.chunks)
        print(f"pipeline: {pipeline['chunks']} chunks; raw model.encode {pipeline['raw']:.1f} chunks/s, "
              f"pipeline {pipeline['pipeline']:.1f} chunks/s, ratio {pipeline['pipeline'] / pipeline['raw']:.2f} "
              "(target >= 0.85)", flush=True)

        holder = Document.objects.create(owner=user, title="synthetic", original_name="synthetic", format="text",
                                         size=0, sha256="f" * 64, file="none", status="ready")
        search, inserts = bench_search(user, holder, [int(s) for s in options.sizes.split(",")], options.queries)
        for row in search:
            print(f"search at {row['size']:>7} chunks: p50 {row['p50']:.2f} ms, p99 {row['p99']:.2f} ms, "
                  f"recall@10 {row['recall']:.3f}  (targets at 100k: p50 <= 15 ms, recall >= 0.95)", flush=True)
        print(f"insert: bulk_create {inserts['orm']:.0f} rows/s, COPY {inserts['copy']:.0f} rows/s, "
              f"ratio {inserts['orm'] / inserts['copy']:.2f}", flush=True)
        Document.objects.filter(owner=user).delete()

        memory = bench_worker_memory(user)
        print(f"documents worker peak memory: pool process RSS {memory['child_mb']:.0f} MB, "
              f"whole worker PSS {memory['total_mb']:.0f} MB  (target <= 500 MB)", flush=True)
    finally:
        Document.objects.filter(owner=user).delete()


if __name__ == "__main__":
    main()
