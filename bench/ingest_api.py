"""Ingestion end to end through the API against raw `model.encode` on the same chunks, and the
documents worker's memory meanwhile, in interleaved rounds.

The documents: the licence texts in /usr/share/common-licenses and PostgreSQL's sample
configuration files (from the pgserver package), uploaded as text. Each round:

- raw: the same chunks (the pipeline's own chunker on the same text) through the same model with
  the same threads and batch size, in this process;
- through the API: every document `POST /api/documents/` to gunicorn (as `make run` serves it),
  from the first upload to the last document `ready`, on a documents worker started with the flags
  start_workers.sh gives it (one process, its memory cap, MALLOC_ARENA_MAX=2). The worker's memory
  is sampled all along: the largest pool process's RSS and the whole worker's PSS (shared pages
  counted once).

    python bench/ingest_api.py [--rounds 3]
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("DEBUG", "false")  # as in production, for this process, gunicorn and the worker

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
import psutil  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from bench.support import (  # noqa: E402
    bench_options,
    free_port,
    raw_encode,
    start_web,
    start_worker,
    stop_web,
    stop_worker,
)
from documents.models import Chunk, Document  # noqa: E402
from documents.pipeline.chunk import text_chunk  # noqa: E402
from documents.pipeline.extract import Page  # noqa: E402
from processes.workers import DOCUMENTS_MAX_MEMORY_KB, DOCUMENTS_MAX_TASKS_PER_CHILD  # noqa: E402

LICENSES = Path("/usr/share/common-licenses")
PG_SHARE = Path(sys.prefix) / "lib/python3.11/site-packages/pgserver/pginstall/share/postgresql"
MEMORY_TARGET_MB = 600
RATIO_TARGET = 0.85


def corpus() -> dict[str, str]:
    """name → text, as many documents as one user may have in flight (DOCUMENT_MAX_IN_FLIGHT), the
    largest first; a licence linked under two names is read once."""
    files = {path.resolve() for path in LICENSES.iterdir() if path.is_file()} | set(PG_SHARE.glob("*.sample"))
    largest = sorted(files, key=lambda path: -path.stat().st_size)[:settings.DOCUMENT_MAX_IN_FLIGHT]
    return {f"{path.name}.txt": path.read_text(errors="replace") for path in largest}


def raw_rate(texts: dict[str, str]) -> tuple[int, float]:
    """(chunks, chunks/s) of model.encode alone on the pipeline's chunks of every document."""
    chunks = [chunk.text for text in texts.values() for chunk in text_chunk(pages=[Page(None, text)])]
    started = time.perf_counter()
    raw_encode(chunks)
    return len(chunks), len(chunks) / (time.perf_counter() - started)


class MemoryWatch:
    """Samples a worker's processes every 50 ms from a thread until stopped."""

    def __init__(self, pid: int) -> None:
        self.main = psutil.Process(pid)
        self.peak_child_mb = self.peak_total_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            infos = []
            for process in [self.main, *self.main.children(recursive=True)]:
                try:
                    infos.append((process.pid, process.memory_full_info()))
                except psutil.Error:  # a pool process replaced meanwhile
                    continue
            self.peak_total_mb = max(self.peak_total_mb, sum(info.pss for _, info in infos) / 2**20)
            children = [info.rss for pid, info in infos if pid != self.main.pid]
            self.peak_child_mb = max(self.peak_child_mb, max(children, default=0) / 2**20)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def through_api(client: httpx.Client, user, texts: dict[str, str]) -> tuple[int, float]:
    """(chunks, chunks/s) from the first upload to the last document ready."""
    Document.objects.filter(owner=user).delete()
    started = time.perf_counter()
    ids = []
    for name, text in texts.items():
        response = client.post("/api/documents/", files={"file": (name, text.encode(), "text/plain")})
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    documents = Document.objects.filter(id__in=ids)
    while documents.exclude(status__in=("ready", "failed")).exists():
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    failed = list(documents.filter(status="failed").values_list("original_name", "error"))
    assert not failed, f"documents failed: {failed}"
    chunks = Chunk.objects.filter(document__in=ids).count()
    Document.objects.filter(owner=user).delete()
    return chunks, chunks / elapsed


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request, otherwise
    options = bench_options(rounds=3)
    texts = corpus()
    user, _ = get_user_model().objects.get_or_create(username="bench-ingest-api")
    worker = start_worker(queues="documents", concurrency=1, include="documents.tasks", name="bench-ingest-api",
                          extra_args=("--max-memory-per-child", str(DOCUMENTS_MAX_MEMORY_KB),
                                      "--max-tasks-per-child", str(DOCUMENTS_MAX_TASKS_PER_CHILD)),
                          env={"MALLOC_ARENA_MAX": "2"})
    port = free_port()
    web = start_web(port, name="ingest-api")
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"})
    watch = MemoryWatch(worker.pid)
    rounds = []
    try:
        raw_rate({"warm.txt": texts[next(iter(texts))]})  # this process's model loaded before the first round
        for number in range(options.rounds):
            legs = {}
            # Each round in the other order, so that neither always runs on a machine the other warmed.
            for leg in (("raw", "api") if number % 2 == 0 else ("api", "raw")):
                legs[leg] = raw_rate(texts) if leg == "raw" else through_api(client, user, texts)
            rounds.append(legs)
            (raw_chunks, raw), (api_chunks, api) = legs["raw"], legs["api"]
            print(f"round {number + 1}: raw model.encode {raw:.1f} chunks/s ({raw_chunks} chunks); through the API "
                  f"{api:.1f} chunks/s ({api_chunks} chunks); ratio {api / raw:.2f}", flush=True)
    finally:
        watch.stop()
        client.close()
        stop_web(web)
        stop_worker(worker)
        Document.objects.filter(owner=user).delete()

    ratios = [legs["api"][1] / legs["raw"][1] for legs in rounds]
    met = sum(ratio >= RATIO_TARGET for ratio in ratios)
    print(f"\n{len(texts)} documents uploaded through the API, upload to ready, against raw model.encode on the "
          f"same chunks: ratio {' / '.join(f'{r:.2f}' for r in ratios)} (target >= {RATIO_TARGET}: met in {met} "
          f"of {len(ratios)} rounds)")
    memory_met = watch.peak_total_mb <= MEMORY_TARGET_MB
    print(f"documents worker meanwhile: largest pool process RSS {watch.peak_child_mb:.0f} MB, whole worker PSS "
          f"{watch.peak_total_mb:.0f} MB (target <= {MEMORY_TARGET_MB} MB: {'met' if memory_met else 'NOT met'})")


if __name__ == "__main__":
    main()
