"""Leases are judged by PostgreSQL's clock: a worker whose clock is minutes behind or ahead keeps
its runs for as long as it heartbeats, one that died is still taken over on time, and a retry is
due by the database's clock. The worker's clock is shifted in its process alone
(tests/support/clockshift), as a host's would drift."""

import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction

from core.clock import database_now
from jobs.models import JobRun
from jobs.selectors import worker_clock_offsets
from jobs.services import maintenance
from jobs.services.runs import run_enqueue
from tests.support import worker as worker_support
from tests.support.worker import wait_for_worker, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

SHIFT = Path(__file__).resolve().parents[1] / "support" / "clockshift"
# Minutes, far past the heartbeat timeout (2 s in the test settings) and the watchdog's tolerance.
MINUTES = 180


@pytest.fixture
def shifted_worker(celery_worker_process):
    started = []

    def start(shift: float):
        celery_worker_process.stop()
        name = f"clock{'+' if shift > 0 else '-'}{abs(int(shift))}"
        proc = worker_support.worker(name, concurrency=1, TEST_CLOCK_SHIFT_SECONDS=str(shift),
                                     PYTHONPATH=str(SHIFT)).start()
        started.append(proc)
        wait_for_worker(name, timeout=90)
        return proc

    yield start
    for proc in started:
        proc.stop()


def _enqueue(kind: str, **args) -> JobRun:
    with transaction.atomic():
        return run_enqueue(kind=kind, args=args)


@pytest.mark.parametrize("shift", [-MINUTES, MINUTES])
def test_a_worker_whose_clock_is_minutes_off_keeps_its_run_while_it_heartbeats(shifted_worker, shift):
    shifted_worker(shift)
    run = _enqueue("tests.stubborn", key=f"clock-{uuid.uuid4().hex[:6]}", seconds=6.0)
    wait_until(lambda: JobRun.objects.get(id=run.id).status == "STARTED", timeout=30, message="the run to start")
    # The watchdog's reaper, asked again and again for three heartbeat timeouts: never a takeover.
    while JobRun.objects.get(id=run.id).status == "STARTED":
        maintenance.runs_reap_stale()
        time.sleep(0.3)
    ended = JobRun.objects.get(id=run.id)
    assert (ended.status, ended.attempts) == ("SUCCESS", 1), ended.attempt_log
    assert not [entry for entry in ended.attempt_log if entry["event"] == "worker lost"]
    offsets = worker_clock_offsets()
    assert any(offset is not None and abs(offset - shift) < 5 for offset in offsets.values()), offsets


def test_a_dead_worker_whose_clock_was_ahead_is_still_taken_over_on_time(shifted_worker):
    """Judged by its own clock, its last heartbeat would stay in the future for minutes."""
    proc = shifted_worker(MINUTES)
    run = _enqueue("tests.stubborn", key=f"clock-dead-{uuid.uuid4().hex[:6]}", seconds=60.0)
    wait_until(lambda: JobRun.objects.get(id=run.id).status == "STARTED", timeout=30, message="the run to start")
    proc.kill()
    killed_at = database_now()
    wait_until(lambda: any(maintenance.runs_reap_stale().values()), timeout=60, interval=0.2,
               message="the reaper to take the dead worker's run over")
    taken_over_after = (database_now() - killed_at).total_seconds()
    # The heartbeat timeout is 2 s here; by the worker's clock it would have been three minutes.
    assert taken_over_after < 15, taken_over_after
    taken = JobRun.objects.get(id=run.id)  # its one attempt spent: failed, saying why
    assert taken.status == "FAILURE" and "worker lost" in taken.error


def test_a_retry_is_due_by_the_databases_clock_whatever_the_workers(shifted_worker):
    shifted_worker(MINUTES)
    run = _enqueue("tests.flaky", key=f"clock-retry-{uuid.uuid4().hex[:6]}", fail_times=3)
    retrying = wait_until(lambda: (r := JobRun.objects.get(id=run.id)).status == "RETRY" and r, timeout=30,
                          message="the first retry")
    # Due 0.3 s after the failure by the database's clock, not three minutes ahead by the worker's.
    assert retrying.due_at - database_now() < timedelta(seconds=1)
    ended = wait_until(lambda: (r := JobRun.objects.get(id=run.id)).status == "SUCCESS" and r, timeout=30,
                       message="the run to succeed after its retries")
    assert ended.attempts == 4
