"""Tracked runs through a real worker: claims, retries, progress, cancel, worker loss."""

import time

import pytest
from django.db import connection, transaction

from jobs import services
from jobs.models import JobRun, RunStatus
from tests.support.worker import wait_for_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def enqueue(kind, **args):
    with transaction.atomic():
        return services.run_enqueue(kind=kind, args=args)


def wait_status(run, *statuses, timeout=30):
    return wait_until(lambda: JobRun.objects.get(id=run.id).status in statuses and JobRun.objects.get(id=run.id),
                      timeout=timeout, message=f"run {run.kind} to reach {statuses}")


def test_sigkill_mid_run_completes_once_after_a_new_worker_starts(celery_worker, effects):
    run = enqueue("tests.effect", key="killed-once", seconds=2.0)
    wait_until(lambda: JobRun.objects.get(id=run.id).status == RunStatus.PROGRESS, message="run in flight")
    celery_worker.kill()
    assert "killed-once" not in effects()

    celery_worker.start()
    wait_for_worker("test-worker")
    # The reaper notices the silent run once its hard limit plus margin has passed, and re-queues it.
    wait_until(lambda: services.runs_reap_stale()["requeued"] == 1, timeout=20, interval=0.5,
               message="reaper to re-queue the run")
    final = wait_status(run, RunStatus.SUCCESS)
    assert final.attempts == 2
    assert effects() == {"killed-once": ""}


def test_a_duplicate_delivery_has_no_second_effect(celery_worker, effects):
    run = enqueue("tests.effect", key="dup", seconds=0.0)
    wait_status(run, RunStatus.SUCCESS)
    # Deliver the same message again, as a redelivery after a lost ack would.
    services.run_dispatch(run=JobRun.objects.get(id=run.id))
    from django_celery_results.models import TaskResult

    wait_until(lambda: celery_worker.log_records(message="run not claimable; skipped", run_id=str(run.id)),
               message="duplicate delivery to be skipped")
    assert effects() == {"dup": ""}
    assert TaskResult.objects.get(task_id=str(run.id)).status == "SUCCESS"
    assert "skipped" not in TaskResult.objects.get(task_id=str(run.id)).result
    assert JobRun.objects.get(id=run.id).attempts == 1


def test_broker_outage_during_post_is_accepted_and_dispatched_later(celery_worker, api, user, broker_proxy):
    from jobs.services import job_create

    job = job_create(name="outage", kind="jobs.ping", params={"echo": "later"}, owner=user)
    broker_proxy.disable()
    response = api.post(f"/api/jobs/{job.id}/trigger/", {}, format="json")
    assert response.status_code == 202
    run = JobRun.objects.get(id=response.json()["id"])
    assert run.status == RunStatus.QUEUED and run.dispatched_at is None

    assert services.runs_dispatch_pending()["published"] == 0  # still down: nothing lost, nothing published
    broker_proxy.enable()
    assert services.runs_dispatch_pending()["published"] == 1
    assert wait_status(run, RunStatus.SUCCESS).result["echo"] == "later"


def test_a_retry_whose_message_was_never_published_is_dispatched_again(celery_worker, effects, settings):
    from datetime import timedelta

    from django.utils import timezone

    # As if an attempt failed while the broker was down: RETRY recorded, no message ever published.
    long_ago = timezone.now() - timedelta(seconds=settings.RUN_REDISPATCH_AFTER_SECONDS + settings.MAX_RETRY_COUNTDOWN + 5)
    lost = JobRun.objects.create(kind="tests.flaky", queue="jobs", args={"key": "retry-lost"}, status=RunStatus.RETRY,
                                 attempts=1, max_attempts=4, heartbeat_at=long_ago, dispatched_at=long_ago)
    assert services.runs_dispatch_pending()["published"] == 1
    assert wait_status(lost, RunStatus.SUCCESS).attempts == 2
    assert effects() == {"retry-lost": "2"}


def test_cancel_while_no_worker_runs_means_the_body_never_runs(celery_worker, effects):
    celery_worker.stop()
    run = enqueue("tests.effect", key="never", seconds=0.0)
    cancelled = services.run_cancel(run=run)
    assert cancelled.status == RunStatus.REVOKED

    celery_worker.start()
    wait_for_worker("test-worker")
    # Wait until the worker has consumed the message (it logs the skip), then check nothing ran.
    wait_until(lambda: celery_worker.log_records(message="run not claimable; skipped", run_id=str(run.id)),
               timeout=20, message="the revoked run's message to be consumed and skipped")
    time.sleep(0.5)
    assert effects() == {}
    assert JobRun.objects.get(id=run.id).status == RunStatus.REVOKED


def test_cancel_a_running_task_stops_it_at_its_next_progress_report(celery_worker, effects):
    run = enqueue("tests.progress", calls=100, interval=0.05, key="should-not-finish")
    wait_until(lambda: JobRun.objects.get(id=run.id).progress_current >= 5, message="progress reported")
    services.run_cancel(run=JobRun.objects.get(id=run.id))
    final = wait_status(run, RunStatus.REVOKED, timeout=5)
    assert final.progress_current < 100
    assert effects() == {}


def test_retry_delays_follow_the_policy_and_the_run_succeeds(celery_worker, effects):
    run = enqueue("tests.flaky", key="third-time", fail_times=2)
    final = wait_status(run, RunStatus.SUCCESS)
    assert final.attempts == 3
    assert [entry["delay"] for entry in final.attempt_log] == [0.3, 0.6]
    assert effects() == {"third-time": "3"}


def test_retry_after_hint_is_honoured_up_to_the_cap(celery_worker):
    run = enqueue("tests.flaky", key="hinted", fail_times=1, retry_after=60)
    final = wait_status(run, RunStatus.SUCCESS)
    assert [entry["delay"] for entry in final.attempt_log] == [2.0]


def test_never_retry_error_fails_once_calls_the_hook_once_and_is_dead(celery_worker, effects):
    run = enqueue("tests.flaky", key="bad", permanent=True)
    final = wait_status(run, RunStatus.FAILURE)
    assert final.attempts == 1 and final.dead
    assert "PermanentError" in final.error and "Traceback" in final.traceback
    assert list(effects("final-failure:")) == [f"final-failure:{run.id}"]


def test_exhausted_retries_end_dead_with_one_hook_call_and_a_manual_retry_succeeds(celery_worker, effects):
    from tests.support.tasks import effect_record

    effect_record("outage")
    run = enqueue("tests.flaky", key="after-outage", blocked_by="outage")
    final = wait_status(run, RunStatus.FAILURE)
    assert final.attempts == final.max_attempts == 4
    assert final.dead
    assert [entry["delay"] for entry in final.attempt_log] == [0.3, 0.6, 0.9, None]
    assert len(effects("final-failure:")) == 1

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM test_effects WHERE key = 'outage'")
    retried = services.run_retry(run=JobRun.objects.get(id=run.id), triggered_by="shell")
    assert retried.retry_of_id == run.id and retried.args == final.args
    assert wait_status(retried, RunStatus.SUCCESS).result == {"attempt": 1}
    assert "after-outage" in effects()
    assert len(effects("final-failure:")) == 1


def test_soft_time_limit_runs_the_cleanup_hook_and_fails_the_run(celery_worker, effects):
    run = enqueue("tests.effect", key="too-slow", seconds=6.0)
    final = wait_status(run, RunStatus.FAILURE, timeout=20)
    assert final.error == "timed out after 3 s" and final.dead
    assert effects() == {"timeout-cleanup:too-slow": ""}


def test_progress_writes_are_throttled_and_eta_appears(celery_worker):
    run = enqueue("tests.progress", calls=40, interval=0.05)
    etas = set()

    def finished():
        current = JobRun.objects.get(id=run.id)
        if current.eta_seconds is not None and current.status == RunStatus.PROGRESS:
            etas.add(current.eta_seconds)
        return current.status == RunStatus.SUCCESS

    wait_until(finished, interval=0.05, message="progress run to finish")
    result = JobRun.objects.get(id=run.id).result
    assert result["calls"] == 40
    # 2 s of reports at 20 per second: about two writes a second, plus the first and the last.
    assert result["writes"] <= 7
    assert etas, "an ETA was visible while the run progressed"
