import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from devserver.embedded import OWNER_ONLY_UMASK  # noqa: E402

os.umask(OWNER_ONLY_UMASK)  # a benchmark's logs under .local/ are owner-only, as everything there


def django_with_fake_llm():
    """A fake OpenAI-compatible server on loopback, then Django set up to use it. The server must be
    up before settings load: the workers a bench starts read AI_SERVER_URL from its environment."""
    from tests.support.fake_llm import FakeLLM

    fake = FakeLLM()
    os.environ["AI_SERVER_URL"] = fake.url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    import django

    django.setup()
    return fake


def bench_options(**defaults):
    """The bench's command-line options, one `--name` per default (underscores as dashes), typed like it."""
    parser = argparse.ArgumentParser()
    for name, default in defaults.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    return parser.parse_args()


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def start_worker(*, queues: str, concurrency: int, include: str, name: str = "bench",
                 extra_args: tuple[str, ...] = (), env: dict | None = None) -> subprocess.Popen:
    from tests.support.worker import wait_for_worker

    log = open(BASE_DIR / ".local" / f"{name}-worker.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "project", "worker", "-n", f"{name}@%h", "-Q", queues,
         "-c", str(concurrency), "-l", "warning", "--include", include, "--without-mingle", "--without-gossip", *extra_args],
        cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})},
    )
    try:
        wait_for_worker(name, timeout=60)
    except TimeoutError:
        stop_worker(proc)
        raise SystemExit("benchmark worker did not start")
    return proc


def stop_worker(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)


@lru_cache(maxsize=1)
def reference_model():
    """The yardstick of the ingestion benchmarks' "raw model.encode": sentence-transformers' own
    model, on the same files and threads as the service's encoder (documents/pipeline/minilm.py)."""
    import torch
    from django.conf import settings
    from sentence_transformers import SentenceTransformer

    from documents.pipeline.embed import local_model_dir

    torch.set_num_threads(max(1, settings.EMBEDDING_THREADS))
    return SentenceTransformer(str(local_model_dir()), device="cpu")


def raw_encode(texts: list[str]) -> None:
    """The texts embedded by the yardstick as a caller of sentence-transformers would."""
    from documents.pipeline.embed import EMBED_BATCH_SIZE

    reference_model().encode(texts, batch_size=EMBED_BATCH_SIZE, normalize_embeddings=True, show_progress_bar=False)


def ingest_here(*, owner, name: str, data: bytes, title: str = ""):
    """Upload and run the real ingestion pipeline in this process (no worker): returns the
    document and the pipeline's result."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import transaction

    from documents.services import document_ingest, document_upload
    from jobs.lifecycle import run_claim
    from jobs.runner import RunContext

    with transaction.atomic():
        document, _ = document_upload(owner=owner, upload=SimpleUploadedFile(name, data), title=title or name)
    claim = run_claim(run_id=str(document.run_id))
    context = RunContext.from_claim(run_id=str(document.run_id), claim=claim)
    return document, document_ingest(document_id=str(document.id), ctx=context)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_web(port: int, *, name: str, gthread: bool = False, env: dict | None = None) -> subprocess.Popen:
    """gunicorn as `make run` serves the API (its config), with DEBUG off and no throttle in the way,
    once it answers and each of its request threads has said it warmed up (the first process to
    answer would otherwise serve beside one still loading its model, sharing the CPU); its log in
    .local/bench-<name>-web.log. `gthread`: the WSGI app under gunicorn's gthread worker, as the
    service was served before its event streams (the baseline of bench/streams.py)."""
    import httpx

    from project.gunicorn_conf import threads, workers

    env = {**os.environ, "PORT": str(port), "DEBUG": "false", "THROTTLE_USER": "1000000/minute",
           "THROTTLE_CHAT": "1000000/minute", "THROTTLE_UPLOADS": "1000000/minute", **(env or {})}
    workers = int(env.get("WEB_CONCURRENCY", workers))
    app = ["project.wsgi:application", "--worker-class", "gthread"] if gthread else ["project.asgi:application"]
    log_path = BASE_DIR / ".local" / f"bench-{name}-web.log"
    log_path.parent.mkdir(exist_ok=True)
    log = open(log_path, "ab")
    log_start = log.tell()

    def threads_warmed() -> int:
        with open(log_path, "rb") as lines:
            lines.seek(log_start)
            # The search's warm-up is each thread's last (documents.apps).
            return lines.read().count(b'"warm_up": "search_thread_warm_up"')

    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), *app, "--config",
                             "python:project.gunicorn_conf"], cwd=BASE_DIR, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health/", timeout=2).status_code in (200, 503) \
                    and threads_warmed() >= workers * threads:
                return proc
            time.sleep(0.1)
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"gunicorn did not start; see .local/bench-{name}-web.log")


def stop_web(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(30)
