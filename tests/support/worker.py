"""Real Celery worker and beat processes for the tests, pointed at the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from core.queues import Queue

BASE_DIR = Path(__file__).resolve().parents[2]
# One folder per pytest process (tests/bootstrap.py): the two xdist processes name their workers alike.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
LOG_DIR = BASE_DIR / ".local" / (f"test-logs-{_XDIST_WORKER}" if _XDIST_WORKER else "test-logs")
ALL_QUEUES = ",".join(Queue)


def test_database_url() -> str:
    s = connection.settings_dict
    user = s.get("USER") or "postgres"
    auth = f"{user}:{s['PASSWORD']}@" if s.get("PASSWORD") else f"{user}@"
    return f"postgres://{auth}{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = test_database_url()
    # The files the test process stored (uploads) are the ones its workers and servers read.
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    # Children talk to Redis directly; only this process goes through the cuttable proxy.
    env.pop("CELERY_BROKER_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class CeleryProcess:
    """One `celery` process (worker or beat) in its own process group, logging to a file."""

    def __init__(self, name: str, args: list[str], **env: str):
        self.name = name
        self.args = args
        self.env = env
        self.proc: subprocess.Popen | None = None
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{name}.log"
        # A fresh log per process object; restarts of the same object append to it.
        self.log_path.write_bytes(b"")

    def start(self) -> "CeleryProcess":
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "project", *self.args],
            cwd=BASE_DIR, env=child_env(**self.env), stdout=self.log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 20) -> None:
        if not self.alive:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker dies mid-task, as on a lost machine."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self, **match) -> list[dict]:
        """The JSON log lines whose fields equal every `match` item."""
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if all(record.get(key) == value for key, value in match.items()):
                    records.append(record)
        return records


def worker(name: str = "test-worker", concurrency: int = 2, queues: str = ALL_QUEUES, **env: str) -> CeleryProcess:
    return CeleryProcess(
        name,
        ["worker", "-n", f"{name}@%h", "-Q", queues, "-c", str(concurrency), "-l", "info",
         "--include", "tests.support.tasks", "--without-mingle", "--without-gossip"],
        **env,
    )


def worker_instead_of(session_worker: CeleryProcess, name: str, concurrency: int = 2, **env: str) -> CeleryProcess:
    """A worker with settings of its own for a module's tests: the session's steps aside (the
    `celery_worker` fixture restarts it for the next test that needs it)."""
    session_worker.stop()
    proc = worker(name, concurrency, **env).start()
    wait_for_worker(name, timeout=90)
    return proc


def beat(name: str = "test-beat", **env: str) -> CeleryProcess:
    return CeleryProcess(name, ["beat", "-l", "info", "--pidfile=", "-s", str(LOG_DIR / f"{name}.schedule")], **env)


def wait_for_worker(name: str, timeout: float = 60) -> None:
    import socket

    from jobs.broker import workers_ping

    node = f"{name}@{socket.gethostname()}"  # `-n name@%h`
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if workers_ping(timeout=0.5, only=[node]):
            return
    raise TimeoutError(f"worker {name} did not answer a ping within {timeout} s")


def wait_until(predicate, *, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
