"""The transitions, one statement each, against the real database (no worker needed)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs import lifecycle
from jobs.constants import Queue
from jobs.errors import RunCancelled
from jobs.models import JobRun, RunStatus

pytestmark = pytest.mark.django_db


def accepted() -> JobRun:
    return lifecycle.run_accept(kind="jobs.ping", queue=Queue.JOBS, max_attempts=3)


def test_a_claim_has_one_winner_and_a_finished_run_is_never_claimed_again():
    run = accepted()
    claim = lifecycle.run_claim(run_id=str(run.id), worker="a:1")
    assert claim.attempt == 1
    assert lifecycle.run_claim(run_id=str(run.id), worker="b:2") is None
    assert lifecycle.run_succeed(run_id=str(run.id), lease=claim.lease, result={"ok": True}, attempt=1) \
        == RunStatus.SUCCESS
    assert lifecycle.run_claim(run_id=str(run.id), worker="b:2") is None
    stored = TaskResult.objects.get(task_id=str(run.id))
    assert (stored.status, stored.result) == ("SUCCESS", '{"ok": true}')


def test_a_retry_is_claimable_only_once_due():
    run = accepted()
    claim = lifecycle.run_claim(run_id=str(run.id), worker="a:1")
    assert lifecycle.run_retry_later(run_id=str(run.id), lease=claim.lease, attempt=1, error="TransientError: 503",
                                     delay=60)
    assert lifecycle.run_claim(run_id=str(run.id), worker="b:2") is None
    JobRun.objects.filter(id=run.id).update(due_at=timezone.now() - timedelta(seconds=1))
    assert lifecycle.run_claim(run_id=str(run.id), worker="b:2").attempt == 2
    assert TaskResult.objects.get(task_id=str(run.id)).status == "RETRY"


def test_a_claim_lost_to_a_database_error_is_taken_over_without_counting_twice(settings):
    run = accepted()
    lifecycle.run_claim(run_id=str(run.id), worker="a:1")  # committed; the worker never heard back
    assert lifecycle.run_claim(run_id=str(run.id), worker="b:2", in_doubt="a:1") is None  # could be holding it
    JobRun.objects.filter(id=run.id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=3 * settings.RUN_HEARTBEAT_SECONDS))
    taken = lifecycle.run_claim(run_id=str(run.id), worker="b:2", in_doubt="a:1")
    assert taken.attempt == 1
    # Another worker's name proves nothing.
    JobRun.objects.filter(id=run.id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=3 * settings.RUN_HEARTBEAT_SECONDS))
    assert lifecycle.run_claim(run_id=str(run.id), worker="c:3", in_doubt="a:1") is None


def test_final_writes_are_refused_once_a_cancel_is_requested():
    from django.db import transaction

    run = accepted()
    claim = lifecycle.run_claim(run_id=str(run.id), worker="a:1")
    assert lifecycle.run_request_cancel(run_id=str(run.id)) == RunStatus.STARTED
    with pytest.raises(RunCancelled), transaction.atomic():
        lifecycle.run_lock_for_commit(run_id=str(run.id), lease=claim.lease)
    # A body that ignored the cancel and returned anyway ends REVOKED, in both records.
    assert lifecycle.run_succeed(run_id=str(run.id), lease=claim.lease, result={"late": True}, attempt=1) \
        == RunStatus.REVOKED
    final = JobRun.objects.get(id=run.id)
    assert final.result is None and [e["event"] for e in final.attempt_log] == ["cancelled"]
    assert TaskResult.objects.get(task_id=str(run.id)).status == "REVOKED"


def test_cancelling_a_waiting_run_revokes_it_at_once_and_a_finished_one_not_at_all():
    run = accepted()
    assert lifecycle.run_request_cancel(run_id=str(run.id)) == RunStatus.REVOKED
    assert lifecycle.run_request_cancel(run_id=str(run.id)) is None


def test_a_released_run_is_queued_again_without_its_attempt():
    run = accepted()
    claim = lifecycle.run_claim(run_id=str(run.id), worker="a:1")
    assert lifecycle.run_release(run_id=str(run.id), lease=claim.lease, reason="its worker was stopped")
    released = JobRun.objects.get(id=run.id)
    assert (released.status, released.attempts) == (RunStatus.QUEUED, 0)
    assert lifecycle.run_claim(run_id=str(run.id), worker="b:2").attempt == 1


def _end_at_barrier(kid: JobRun, lease: int, together) -> None:
    from django.db import connection, transaction

    try:
        with transaction.atomic():
            lifecycle.run_succeed(run_id=str(kid.id), lease=lease, result=None, attempt=1)
            together.wait(timeout=10)
    finally:
        connection.close()


def test_children_ending_at_the_same_moment_queue_their_parent_exactly_once(transactional_db, caplog):
    """Each child's end commits in its own transaction at a barrier, then announces itself: every
    time, exactly one announcement queues the parent for its final step."""
    import logging
    import threading

    from jobs.services import fan_out

    caplog.set_level(logging.INFO, logger="jobs.services.fan_out")
    for _ in range(10):
        caplog.clear()
        # On a queue no worker reads: once queued for its final step it stays QUEUED to be looked at.
        parent = lifecycle.run_accept(kind="jobs.ping", queue="test-unread", max_attempts=3)
        claim = lifecycle.run_claim(run_id=str(parent.id), worker="p:1")
        kids = [lifecycle.run_accept(kind="jobs.ping", queue=Queue.JOBS, parent=parent) for _ in range(2)]
        assert lifecycle.run_await_children(run_id=str(parent.id), lease=claim.lease, total=2, step="children",
                                            message="")
        leases = [lifecycle.run_claim(run_id=str(kid.id), worker="c:1").lease for kid in kids]
        together = threading.Barrier(2)
        threads = [threading.Thread(target=_end_at_barrier, args=(kid, lease, together))
                   for kid, lease in zip(kids, leases)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        parent.refresh_from_db()
        assert parent.status == RunStatus.QUEUED and not parent.awaiting_children
        assert parent.attempts == 0  # handing over was not an attempt
        queued = [r for r in caplog.records if r.getMessage().startswith("children ended; parent queued")]
        assert len(queued) == 1
        assert fan_out.run_children_progress(parent_id=parent.id) is False  # a late or repeated announcement


def test_a_parent_awaiting_children_is_never_stale_nor_claimed_and_a_cancel_revokes_it():
    parent = accepted()
    claim = lifecycle.run_claim(run_id=str(parent.id), worker="gone:1")
    child = lifecycle.run_accept(kind="jobs.ping", queue=Queue.JOBS, parent=parent)
    assert lifecycle.run_await_children(run_id=str(parent.id), lease=claim.lease, total=1, step="children",
                                        message="1 child")
    JobRun.objects.filter(id=parent.id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert parent.id not in {r.id for r in lifecycle.runs_stale(limit=100)}
    assert not JobRun.objects.stalled().filter(id=parent.id).exists()
    assert lifecycle.run_claim(run_id=str(parent.id), worker="other:2") is None
    assert lifecycle.run_children_done(run_id=str(parent.id)) is False  # its child is unfinished
    assert lifecycle.run_request_cancel(run_id=str(parent.id)) == RunStatus.REVOKED
    assert JobRun.objects.get(id=child.id).status == RunStatus.QUEUED  # children: services.steering.run_cancel


def _taken_over(settings) -> tuple[JobRun, lifecycle.Claim, lifecycle.Claim]:
    """A run whose first attempt went silent (paused, cut off) and was taken over by a second."""
    run = accepted()
    first = lifecycle.run_claim(run_id=str(run.id), worker="paused:1")
    JobRun.objects.filter(id=run.id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 1))
    assert lifecycle.run_reap(run=JobRun.objects.get(id=run.id)) == RunStatus.QUEUED
    second = lifecycle.run_claim(run_id=str(run.id), worker="awake:2")
    assert second.lease == first.lease + 1
    return run, first, second


def test_every_write_of_an_attempt_that_lost_its_lease_is_refused(settings):
    from django.db import transaction

    from jobs.errors import LeaseLost
    from jobs.models import JobRunLogEntry

    run, stale, holder = _taken_over(settings)
    run_id = str(run.id)
    assert lifecycle.run_heartbeat(run_id=run_id, lease=stale.lease) is False
    with pytest.raises(LeaseLost):
        lifecycle.run_progress(run_id=run_id, lease=stale.lease, current=5, total=10, step="late", message="",
                               eta=None)
    with pytest.raises(LeaseLost):
        lifecycle.run_checkpoint(run_id=run_id, lease=stale.lease, values={"answer": "late"})
    with pytest.raises(LeaseLost):
        lifecycle.run_log(run_id=run_id, lease=stale.lease, level="info", message="late")
    with pytest.raises(LeaseLost), transaction.atomic():
        lifecycle.run_lock_for_commit(run_id=run_id, lease=stale.lease)
    assert lifecycle.run_succeed(run_id=run_id, lease=stale.lease, result={"late": True}, attempt=1) is None
    assert lifecycle.run_retry_later(run_id=run_id, lease=stale.lease, attempt=1, error="late", delay=1) is False
    assert lifecycle.run_fail(run_id=run_id, lease=stale.lease, error="late", attempt=1) is False
    assert lifecycle.run_revoke(run_id=run_id, lease=stale.lease, reason="cancelled while running") is False
    assert lifecycle.run_release(run_id=run_id, lease=stale.lease, reason="late") is None

    now = JobRun.objects.get(id=run.id)
    assert (now.status, now.worker, now.lease, now.cancel_requested) == (RunStatus.STARTED, "awake:2", holder.lease,
                                                                         False)
    assert now.progress_step != "late" and now.checkpoints == {} and not JobRunLogEntry.objects.filter(run=run).exists()
    # The holder's writes land, and the run ends once, by it.
    assert lifecycle.run_progress(run_id=run_id, lease=holder.lease, current=1, total=2, step="going", message="",
                                  eta=None)
    assert lifecycle.run_succeed(run_id=run_id, lease=holder.lease, result={"by": "holder"}, attempt=2) \
        == RunStatus.SUCCESS
    assert JobRun.objects.get(id=run.id).result == {"by": "holder"}


def test_checkpoints_reach_the_next_attempt_and_go_with_success(settings):
    run = accepted()
    first = lifecycle.run_claim(run_id=str(run.id), worker="a:1")
    assert lifecycle.run_checkpoint(run_id=str(run.id), lease=first.lease, values={"answer": "kept", "done": 3})
    assert lifecycle.run_release(run_id=str(run.id), lease=first.lease, reason="database unreachable") \
        == RunStatus.QUEUED
    second = lifecycle.run_claim(run_id=str(run.id), worker="b:2")
    assert second.checkpoints == {"answer": "kept", "done": 3} and second.attempt == 1
    assert lifecycle.run_succeed(run_id=str(run.id), lease=second.lease, result=None, attempt=1) == RunStatus.SUCCESS
    assert JobRun.objects.get(id=run.id).checkpoints == {}


def test_a_checkpoint_shows_at_least_the_progress_it_keeps_and_never_lowers_it():
    """A report throttled away just before a checkpoint would leave the run showing less than it
    keeps, and a takeover then starting from more than the run ever showed."""
    run = accepted()
    claim = lifecycle.run_claim(run_id=str(run.id), worker="a:1")
    lifecycle.run_progress(run_id=str(run.id), lease=claim.lease, current=56, total=128, step="embedding",
                           message="", eta=None)
    assert lifecycle.run_checkpoint(run_id=str(run.id), lease=claim.lease, values={"embedded": 64}, current=64)
    assert JobRun.objects.get(id=run.id).progress_current == 64
    lifecycle.run_progress(run_id=str(run.id), lease=claim.lease, current=100, total=128, step="embedding",
                           message="", eta=None)
    assert lifecycle.run_checkpoint(run_id=str(run.id), lease=claim.lease, values={"embedded": 96}, current=96)
    assert lifecycle.run_checkpoint(run_id=str(run.id), lease=claim.lease, values={"answer": "kept"})
    assert JobRun.objects.get(id=run.id).progress_current == 100


def test_a_cancel_seen_by_a_stale_attempt_does_not_revoke_the_run_its_successor_holds(settings):
    from jobs.errors import LeaseLost

    run, stale, holder = _taken_over(settings)
    JobRun.objects.filter(id=run.id).update(cancel_requested=True)  # a real cancel, for the holder to see
    with pytest.raises(LeaseLost):
        lifecycle.run_progress(run_id=str(run.id), lease=stale.lease, current=1, total=2, step="", message="",
                               eta=None)
    assert lifecycle.run_revoke(run_id=str(run.id), lease=stale.lease) is False
    assert lifecycle.run_progress(run_id=str(run.id), lease=holder.lease, current=1, total=2, step="", message="",
                                  eta=None) is False
    assert lifecycle.run_revoke(run_id=str(run.id), lease=holder.lease) is True


def test_the_task_result_adapter_writes_every_column_django_celery_results_requires():
    import re

    from django.db import models

    listed = re.search(r"INSERT INTO django_celery_results_taskresult\s*\(([^)]*)\)", lifecycle._TASK_RESULT_UPSERT)
    written = {column.strip() for column in listed.group(1).split(",")}
    required = {field.column for field in TaskResult._meta.concrete_fields
                if not field.primary_key and not field.null and field.default is models.NOT_PROVIDED
                and not getattr(field, "auto_now", False) and not getattr(field, "auto_now_add", False)}
    assert required <= written, f"columns django-celery-results needs that the adapter leaves out: {required - written}"
    assert written <= {field.column for field in TaskResult._meta.concrete_fields}


def test_the_database_refuses_a_run_that_breaks_the_lifecycles_invariants():
    from django.db import IntegrityError, transaction

    for broken in ({"status": "SUCCESS", "finished_at": None}, {"status": "QUEUED", "dead": True},
                   {"status": "LOST"}, {"max_attempts": 0}):
        with pytest.raises(IntegrityError), transaction.atomic():
            JobRun.objects.create(kind="jobs.ping", queue=Queue.JOBS, **broken)
