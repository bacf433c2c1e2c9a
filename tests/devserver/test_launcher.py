"""`make run`'s launcher as a user runs it: started, stopped with Ctrl-C mid-work, started again."""

import os
import signal
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
from tests.support.fake_llm import Step
from tests.support.files import upload
from tests.support.launcher import Launcher, celery_processes_of
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

LONG_TEXT = "\n\n".join(
    f"Section {i}: the lighthouse keeper logs the wind, the swell and every ship that passes the point, "
    f"with the time of each sighting and the state of the lamp at marker {i}." for i in range(900)
).encode()


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
