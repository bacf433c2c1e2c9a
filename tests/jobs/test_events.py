"""Task events go off again by themselves once nobody asks for them or reads them (jobs.events):
a real worker, a real Redis, and Celery's own event receiver as the reader."""

import socket
import threading
import time

import pytest
from django.db import transaction

from jobs.models import JobRun, RunStatus
from jobs.services import runs
from project.celery import app
from tests.support.worker import LOG_DIR, wait_until, worker_instead_of

pytestmark = pytest.mark.django_db(transaction=True)

IDLE_SECONDS = 3
NODE = f"events-lease@{socket.gethostname()}"


class Reader:
    """Celery's EventReceiver in a thread, as `celery events` or Flower read: the task events seen."""

    def __init__(self):
        self.seen: list[dict] = []
        self.ready = threading.Event()
        self.connection = app.connection_for_read()
        self.receiver = app.events.Receiver(self.connection, handlers={"*": self._on_event})
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _on_event(self, event):
        if event["type"].startswith("task-"):
            self.seen.append(event)

    def _read(self):
        self.ready.set()
        try:
            self.receiver.capture(limit=None, timeout=None, wakeup=False)
        except Exception:
            pass  # closed under it

    def task_events_of(self, run_id) -> set[str]:
        return {e["type"] for e in self.seen if e.get("uuid") == str(run_id)}

    def close(self):
        self.receiver.should_stop = True
        self.thread.join(10)
        self.connection.release()


def _run_one(key: str) -> JobRun:
    with transaction.atomic():
        run = runs.run_enqueue(kind="tests.effect", args={"key": key})
    wait_until(lambda: JobRun.objects.get(id=run.id).status == RunStatus.SUCCESS, timeout=30,
               message=f"run {key} to finish")
    return run


@pytest.fixture
def lease_worker(celery_worker):
    proc = worker_instead_of(celery_worker, "events-lease", concurrency=1, TASK_EVENTS_IDLE_SECONDS=str(IDLE_SECONDS))
    yield proc
    proc.stop()


def test_task_events_stay_on_while_read_and_go_off_once_nobody_asks_or_reads(lease_worker):
    reader = Reader()
    try:
        first = _run_one("events-before")
        time.sleep(1)
        assert reader.task_events_of(first.id) == set(), "task events are off until someone asks"

        app.control.enable_events(destination=[NODE])
        asked = _run_one("events-asked")
        wait_until(lambda: "task-succeeded" in reader.task_events_of(asked.id), timeout=10,
                   message="task events once enable_events was sent")
        # Past the lease, but `reader` is listening, as `celery events` does without asking: still on.
        time.sleep(IDLE_SECONDS * 2 + 1)
        read = _run_one("events-read")
        wait_until(lambda: "task-succeeded" in reader.task_events_of(read.id), timeout=10,
                   message="task events while a reader is bound")
    finally:
        reader.close()

    log = LOG_DIR / "events-lease.log"
    wait_until(lambda: "task events switched off" in log.read_text(), timeout=IDLE_SECONDS * 4,
               message="the worker to switch task events off once the reader left")
    later = Reader()
    try:
        after = _run_one("events-after")
        time.sleep(1)
        assert later.task_events_of(after.id) == set()
    finally:
        later.close()
