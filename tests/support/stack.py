"""`make run` on embedded PostgreSQL and Redis of its own, whose servers a test stops and freezes.

The suite's own servers stay untouched: this stack keeps its data under a temporary LOCAL_DIR, on
ports of its own, exactly as a fresh checkout's `make run` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.launcher import BASE_DIR, Launcher
from tests.support.worker import wait_until


class OwnStack(Launcher):
    def __init__(self, tmp_path: Path, **env: str):
        super().__init__(tmp_path, own_services=True, log_name="own-stack", **env)
        self.base = f"http://127.0.0.1:{self.port}"

    def embedded(self, *args: str) -> None:
        """`python -m devserver.embedded …` on this stack's servers."""
        subprocess.run([sys.executable, "-m", "devserver.embedded", *args], cwd=BASE_DIR, env=self.env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def manage(self, *args: str) -> str:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env, check=True,
                              capture_output=True, text=True).stdout

    def api_client(self, username: str) -> httpx.Client:
        """A client with a token of `username` (created if needed), giving up on any answer after 5 s."""
        token = self.manage("create_api_token", username).strip().split()[-1]
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Token {token}"}, timeout=5)

    def services_env(self) -> dict[str, str]:
        """The URLs the stack's servers were started with (its .local/services.env)."""
        lines = (self.local_dir / "services.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    def admin_client(self) -> httpx.Client:
        """A browser-like client logged in to the admin as the user `make run` created."""
        password = (self.local_dir / "admin.txt").read_text().split("password:")[1].strip()
        client = httpx.Client(base_url=self.base, timeout=5)
        client.get("/admin/login/")
        response = client.post("/admin/login/?next=/admin/", data={
            "username": "admin", "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
            headers={"Referer": f"{self.base}/admin/login/"})
        assert response.status_code == 302, response.text[:500]
        return client

    # --- Redis -------------------------------------------------------------------------------

    def _redis_pid(self) -> int:
        return int((self.local_dir / "redis" / "redis.pid").read_text().split()[0])

    def redis_freeze(self) -> None:
        os.kill(self._redis_pid(), signal.SIGSTOP)

    def redis_thaw(self) -> None:
        os.kill(self._redis_pid(), signal.SIGCONT)

    def redis_stop(self) -> None:
        self.embedded("stop", "redis")

    def services_start(self) -> None:
        """Start whichever of the stack's servers is stopped, as `make services` does."""
        self.embedded("start")

    # --- PostgreSQL --------------------------------------------------------------------------

    def postgres_stop(self) -> None:
        self.embedded("stop", "postgres")

    def _postgres_pids(self) -> list[int]:
        """The cluster's postmaster first, then every process it forked (backends, checkpointer…)."""
        postmaster = int((self.local_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == postmaster:
                        children.append(int(entry.name))
                except (OSError, ValueError, IndexError):
                    continue
        return [postmaster, *children]

    def postgres_freeze(self) -> None:
        """As a hung host or a dropped network looks: connections stay open, nothing answers, and no
        new backend can be forked (the postmaster stops first)."""
        for pid in self._postgres_pids():
            os.kill(pid, signal.SIGSTOP)

    def postgres_thaw(self) -> None:
        for pid in reversed(self._postgres_pids()):
            os.kill(pid, signal.SIGCONT)

    def wait_healthy(self, *, timeout: float) -> None:
        wait_until(self._serving, timeout=timeout, interval=0.5, message="the stack to report every check ok")

    def stop(self, marker: str) -> None:
        self.kill(marker)
        self.embedded("stop")
