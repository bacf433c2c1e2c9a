"""`python -m devserver.launcher` (what `make run` runs) as a test's subprocess, on the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.worker import LOG_DIR, child_env, wait_until

BASE_DIR = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Launcher:
    """`python -m devserver.launcher` on the test database, logging to a file."""

    def __init__(self, tmp_path: Path, *, own_services: bool = False, log_name: str = "launcher", **env: str):
        self.port = _free_port()
        self.local_dir = tmp_path / "local"
        self.env = child_env(LOCAL_DIR=str(self.local_dir), PORT=str(self.port), **env)
        if own_services:
            # As from a clean checkout: its own embedded PostgreSQL and Redis, files and static under LOCAL_DIR.
            for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "MEDIA_ROOT", "STATIC_ROOT"):
                self.env.pop(name, None)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / f"{log_name}.log"
        self.log_path.write_bytes(b"")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "devserver.launcher"], cwd=BASE_DIR, env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._serving, timeout=120, interval=0.5, message="make run to serve")

    def _serving(self) -> bool:
        assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
        try:
            body = httpx.get(f"http://127.0.0.1:{self.port}/api/health/", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return False
        return body.get("status") == "ok"

    def interrupt(self) -> int:
        """Ctrl-C, as a user does; returns the exit code."""
        os.kill(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=90)

    def kill(self, marker: str) -> None:
        """After a failed test: stop it as Ctrl-C would, then kill whatever it left running."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for pid in celery_processes_of(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def celery_processes_of(env_marker: str) -> list[int]:
    """Pids of processes whose environment carries the marker: what this launcher started."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if env_marker.encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
