"""The transitions, one statement each, against the real database (no worker needed)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_results.models import TaskResult

from jobs import lifecycle
from jobs.errors import RunCancelled
from jobs.models import JobRun, RunStatus

pytestmark = pytest.mark.django_db


def accepted() -> JobRun:
    return lifecycle.run_accept(kind="jobs.ping", queue="jobs", max_attempts=3)


def test_a_claim_has_one_winner_and_a_finished_run_is_never_claimed_again():
    run = accepted()
    assert lifecycle.run_claim(run_id=str(run.id), worker="a:1").attempt == 1
    assert lifecycle.run_claim(run_id=str(run.id), worker="b:2") is None
    assert lifecycle.run_succeed(run_id=str(run.id), result={"ok": True}, attempt=1) == RunStatus.SUCCESS
    assert lifecycle.run_claim(run_id=str(run.id), worker="b:2") is None
    stored = TaskResult.objects.get(task_id=str(run.id))
    assert (stored.status, stored.result) == ("SUCCESS", '{"ok": true}')


def test_a_retry_is_claimable_only_once_due():
    run = accepted()
    lifecycle.run_claim(run_id=str(run.id), worker="a:1")
    assert lifecycle.run_retry_later(run_id=str(run.id), attempt=1, error="TransientError: 503", delay=60)
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
    lifecycle.run_claim(run_id=str(run.id), worker="a:1")
    assert lifecycle.run_request_cancel(run_id=str(run.id)) == RunStatus.STARTED
    with pytest.raises(RunCancelled), transaction.atomic():
        lifecycle.run_lock_for_commit(run_id=str(run.id))
    # A body that ignored the cancel and returned anyway ends REVOKED, in both records.
    assert lifecycle.run_succeed(run_id=str(run.id), result={"late": True}, attempt=1) == RunStatus.REVOKED
    final = JobRun.objects.get(id=run.id)
    assert final.result is None and [e["event"] for e in final.attempt_log] == ["cancelled"]
    assert TaskResult.objects.get(task_id=str(run.id)).status == "REVOKED"


def test_cancelling_a_waiting_run_revokes_it_at_once_and_a_finished_one_not_at_all():
    run = accepted()
    assert lifecycle.run_request_cancel(run_id=str(run.id)) == RunStatus.REVOKED
    assert lifecycle.run_request_cancel(run_id=str(run.id)) is None


def test_a_released_run_is_queued_again_without_its_attempt():
    run = accepted()
    lifecycle.run_claim(run_id=str(run.id), worker="a:1")
    assert lifecycle.run_release(run_id=str(run.id), reason="its worker was stopped")
    released = JobRun.objects.get(id=run.id)
    assert (released.status, released.attempts) == (RunStatus.QUEUED, 0)
    assert lifecycle.run_claim(run_id=str(run.id), worker="b:2").attempt == 1


def _end_at_barrier(kid: JobRun, together) -> None:
    from django.db import connection, transaction

    try:
        with transaction.atomic():
            lifecycle.run_succeed(run_id=str(kid.id), result=None, attempt=1)
            together.wait(timeout=10)
    finally:
        connection.close()


def test_children_ending_at_the_same_moment_queue_their_parent_exactly_once(transactional_db, caplog):
    """Each child's end commits in its own transaction at a barrier, then announces itself: every
    time, exactly one announcement queues the parent for its final step."""
    import logging
    import threading

    from jobs.services import runs

    caplog.set_level(logging.INFO, logger="jobs.services.runs")
    for _ in range(10):
        caplog.clear()
        # On a queue no worker reads: once queued for its final step it stays QUEUED to be looked at.
        parent = lifecycle.run_accept(kind="jobs.ping", queue="test-unread", max_attempts=3)
        lifecycle.run_claim(run_id=str(parent.id), worker="p:1")
        kids = [lifecycle.run_accept(kind="jobs.ping", queue="jobs", parent=parent) for _ in range(2)]
        assert lifecycle.run_await_children(run_id=str(parent.id), total=2, step="children", message="")
        for kid in kids:
            lifecycle.run_claim(run_id=str(kid.id), worker="c:1")
        together = threading.Barrier(2)
        threads = [threading.Thread(target=_end_at_barrier, args=(kid, together)) for kid in kids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        parent.refresh_from_db()
        assert parent.status == RunStatus.QUEUED and not parent.awaiting_children
        assert parent.attempts == 0  # handing over was not an attempt
        queued = [r for r in caplog.records if r.getMessage().startswith("children ended; parent queued")]
        assert len(queued) == 1
        assert runs.run_children_progress(parent_id=parent.id) is False  # a late or repeated announcement


def test_a_parent_awaiting_children_is_never_stale_nor_claimed_and_a_cancel_revokes_it():
    parent = accepted()
    lifecycle.run_claim(run_id=str(parent.id), worker="gone:1")
    child = lifecycle.run_accept(kind="jobs.ping", queue="jobs", parent=parent)
    assert lifecycle.run_await_children(run_id=str(parent.id), total=1, step="children", message="1 child")
    JobRun.objects.filter(id=parent.id).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert parent.id not in {r.id for r in lifecycle.runs_stale(limit=100)}
    assert not JobRun.objects.stalled().filter(id=parent.id).exists()
    assert lifecycle.run_claim(run_id=str(parent.id), worker="other:2") is None
    assert lifecycle.run_children_done(run_id=str(parent.id)) is False  # its child is unfinished
    assert lifecycle.run_request_cancel(run_id=str(parent.id)) == RunStatus.REVOKED
    assert JobRun.objects.get(id=child.id).status == RunStatus.QUEUED  # children: services.runs.run_cancel
