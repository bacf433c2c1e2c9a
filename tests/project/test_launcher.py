"""`make run`'s launcher as a user runs it: started, stopped with Ctrl-C mid-work, started again."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import transaction

from chat.models import ChatSession, Message
from chat.services import message_post
from documents.models import Chunk, Document
from documents.services import document_upload
from jobs.models import JobRun
from tests.factories import UserFactory
from tests.support.fake_llm import FakeLLM, Step
from tests.support.files import upload
from tests.support.worker import LOG_DIR, child_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

BASE_DIR = Path(__file__).resolve().parents[2]
LONG_TEXT = "\n\n".join(
    f"Section {i}: the lighthouse keeper logs the wind, the swell and every ship that passes the point, "
    f"with the time of each sighting and the state of the lamp at marker {i}." for i in range(900)
).encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Launcher:
    """`python -m project.launcher` on the test database, logging to a file."""

    def __init__(self, tmp_path: Path, **env: str):
        self.port = _free_port()
        self.env = child_env(LOCAL_DIR=str(tmp_path / "local"), PORT=str(self.port), **env)
        self.log_path = LOG_DIR / "launcher.log"
        self.log_path.write_bytes(b"")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "project.launcher"], cwd=BASE_DIR, env=self.env,
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


@pytest.fixture
def fake_llm():
    server = FakeLLM()
    yield server
    server.stop()


def static_and_docs_are_served_from_the_host(base: str) -> None:
    """The admin's stylesheet and the docs UI come from this server, nothing from outside."""
    import re

    login = httpx.get(f"{base}/admin/login/").text
    stylesheet = re.search(r'href="(/static/admin/css/base(?:\.[0-9a-f]+)?\.css)"', login).group(1)
    css = httpx.get(base + stylesheet)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "#header" in css.text or "--header" in css.text
    for page in ("/api/docs/", "/api/redoc/"):
        html = httpx.get(base + page).text
        assert not re.search(r'(src|href)="(https?:)?//', html), page  # nothing loaded from another host
        for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
            assert httpx.get(base + asset).status_code == 200, asset


def child_named(parent: int, fragment: str) -> int:
    """The direct child of `parent` whose command line contains `fragment`."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and fragment in cmdline:
                return int(proc.name)
    raise AssertionError(f"no child of {parent} runs {fragment!r}")


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


def test_ctrl_c_mid_work_then_restart_resumes_the_ingestion_and_the_reply(celery_worker, fake_llm, tmp_path):
    celery_worker.stop()  # the launcher's workers take the queues
    marker = f"LAUNCHER_TEST_MARK={time.time_ns()}"
    # No watchdog redispatch within the test: only the messages the stop handed back can resume the runs.
    launcher = Launcher(tmp_path, AI_SERVER_URL=fake_llm.url, AI_TIMEOUT="30", WORKER_STOP_GRACE_SECONDS="2",
                        RUN_MESSAGE_LOST_AFTER_SECONDS="600", LAUNCHER_TEST_MARK=marker.split("=")[1])
    fake_llm.default = Step(delay=6, content="Answered after the restart.")
    try:
        launcher.start()
        static_and_docs_are_served_from_the_host(f"http://127.0.0.1:{launcher.port}")
        # One worker dies: it is restarted, the rest keep serving, make run keeps running.
        os.kill(child_named(launcher.proc.pid, "default@"), signal.SIGKILL)
        wait_until(lambda: "restarting worker default" in launcher.log_path.read_text(), timeout=30,
                   message="the dead worker to be restarted")
        wait_until(launcher._serving, timeout=60, interval=0.5, message="all workers to answer again")
        user = UserFactory()
        with transaction.atomic():
            document, _ = document_upload(owner=user, upload=upload("lighthouse.txt", LONG_TEXT))
        message = message_post(session=ChatSession.objects.create(owner=user), content="What does the keeper log?")
        wait_until(lambda: fake_llm.requests and JobRun.objects.get(id=document.run_id).progress_step == "embedding",
                   timeout=120, interval=0.1, message="the reply and the ingestion to be under way")

        assert launcher.interrupt() == 0
        assert celery_processes_of(marker) == [], "a stop left processes behind"
        for run_id in (document.run_id, message.run_id):
            released = JobRun.objects.get(id=run_id)
            assert (released.status, released.attempts) == ("QUEUED", 0), released.error

        launcher.start()
        both = [document.run_id, message.run_id]
        # Resumed at once: their messages went back to the queue with the stop.
        wait_until(lambda: not JobRun.objects.filter(id__in=both, status="QUEUED").exists(), timeout=20,
                   interval=0.2, message="both runs to be taken up again as soon as the workers are back")
        wait_until(lambda: JobRun.objects.filter(id__in=both, status="SUCCESS").count() == 2, timeout=120,
                   interval=0.5, message="both runs to finish after the restart")
        assert all(run.attempts == 1 for run in JobRun.objects.filter(id__in=both))
        ready = Document.objects.get(id=document.id)
        assert ready.status == "ready"
        assert Chunk.objects.filter(document=ready).count() == ready.chunk_count > 0
        assert list(Message.objects.filter(reply_to=message).values_list("content", flat=True)) == [
            "Answered after the restart."]
        assert launcher.interrupt() == 0
        assert celery_processes_of(marker) == []
    finally:
        launcher.kill(marker)
