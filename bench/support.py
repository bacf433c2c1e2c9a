import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def start_worker(*, queues: str, concurrency: int, include: str, name: str = "bench",
                 extra_args: tuple[str, ...] = (), env: dict | None = None) -> subprocess.Popen:
    from project.celery import app

    log = open(BASE_DIR / ".local" / f"{name}-worker.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "project", "worker", "-n", f"{name}@%h", "-Q", queues,
         "-c", str(concurrency), "-l", "warning", "--include", include, "--without-mingle", "--without-gossip", *extra_args],
        cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=0.5) or []
        if any(key.startswith(f"{name}@") for reply in replies for key in reply):
            return proc
    stop_worker(proc)
    raise SystemExit("benchmark worker did not start")


def stop_worker(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)
