"""Tracked runs through a real worker: claims, retries, progress, cancel, worker loss."""

import json
import time

import pytest
from django.db import connection, transaction

from jobs.constants import Queue
from jobs.models import RUNNING_STATUSES, JobRun, RunStatus
from jobs.services import maintenance, runs, steering
from tests.support.worker import wait_for_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def enqueue(kind, **args):
    with transaction.atomic():
        return runs.run_enqueue(kind=kind, args=args)


def wait_status(run, *statuses, timeout=30):
    return wait_until(lambda: JobRun.objects.get(id=run.id).status in statuses and JobRun.objects.get(id=run.id),
                      timeout=timeout, message=f"run {run.kind} to reach {statuses}")


def test_sigkill_mid_run_completes_once_after_a_new_worker_starts(broker, effects, settings):
    run = enqueue("tests.effect", key="killed-once", seconds=2.0)
    wait_until(lambda: JobRun.objects.get(id=run.id).status == RunStatus.PROGRESS, message="run in flight")
    broker.worker.kill()
    assert "killed-once" not in effects()

    broker.worker.start()
    wait_for_worker(broker.worker_name)
    # No wait for the hard limit: once the heartbeat is stale, the reaper re-queues the run. On
    # RabbitMQ the message the dead worker held returns to the queue as its connection drops, and
    # the new worker may get it after the heartbeat went stale: its claim then takes the run over.
    reaped = []

    def taken_over() -> bool:
        reaped.append(maintenance.runs_reap_stale()["requeued"])
        return bool(reaped[-1]) or JobRun.objects.get(id=run.id).attempts == 2

    wait_until(taken_over, timeout=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 5, interval=0.5,
               message="the run to be taken over")
    final = wait_status(run, RunStatus.SUCCESS)
    assert final.attempts == 2
    assert [entry["event"] for entry in final.attempt_log] == (["worker lost"] if any(reaped) else [])
    assert sum(reaped) <= 1 and (broker.name == "rabbitmq" or any(reaped))
    assert effects() == {"killed-once": ""}


def test_a_worker_paused_inside_a_transaction_is_taken_over_and_its_writes_are_not_kept(broker, effects,
                                                                                         settings):
    """SIGSTOP while a checkpoint's transaction holds the run's row: the server ends that transaction
    once it has idled a heartbeat timeout, the takeover goes through while the worker still sleeps,
    and on waking the old attempt writes nothing; the new one keeps each effect once."""
    import os
    import signal

    run = enqueue("tests.checkpointing", key="paused-in-tx", dawdle_seconds=1.5)
    wait_until(_worker_idles_in_a_transaction, timeout=30, interval=0.02,
               message="the first attempt inside its checkpoint's transaction")
    os.killpg(broker.worker.proc.pid, signal.SIGSTOP)
    try:
        # The watchdog's pass, from this process as from another machine: it never waits on the row.
        wait_until(lambda: maintenance.runs_reap_stale()["requeued"], interval=0.3,
                   timeout=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 10, message="the paused run to be taken over")
        assert JobRun.objects.get(id=run.id).status == RunStatus.QUEUED
    finally:
        os.killpg(broker.worker.proc.pid, signal.SIGCONT)
    final = wait_status(run, RunStatus.SUCCESS)
    assert [entry["event"] for entry in final.attempt_log] == ["worker lost"]
    assert effects("paused-in-tx") == {"paused-in-tx:checkpoint": "2", "paused-in-tx": "2"}
    # Its failure (the server ended its transaction) was nobody's outcome, and said so.
    wait_until(lambda: [record for record in broker.worker.log_records(run_id=str(run.id), lease=1)
                        if record["message"].startswith("attempt lost its run to a takeover")],
               timeout=10, message="the old attempt's word")


def _worker_idles_in_a_transaction() -> bool:
    """A session of the worker idles in a transaction that holds a lock on the run's row."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
                       "WHERE a.state = 'idle in transaction' AND l.relation = 'jobs_jobrun'::regclass "
                       "AND l.mode = 'RowShareLock' AND a.pid <> pg_backend_pid()")
        return cursor.fetchone()[0] > 0


def test_a_duplicate_delivery_has_no_second_effect(broker, effects):
    run = enqueue("tests.effect", key="dup", seconds=0.0)
    wait_status(run, RunStatus.SUCCESS)
    # Deliver the same message again, as a redelivery after a lost ack would.
    runs.run_dispatch(run=JobRun.objects.get(id=run.id))
    from django_celery_results.models import TaskResult

    wait_until(lambda: broker.worker.log_records(message="run not claimable; skipped", run_id=str(run.id)),
               message="duplicate delivery to be skipped")
    assert effects() == {"dup": ""}
    assert TaskResult.objects.get(task_id=str(run.id)).status == "SUCCESS"
    assert "skipped" not in TaskResult.objects.get(task_id=str(run.id)).result
    assert JobRun.objects.get(id=run.id).attempts == 1


def test_broker_outage_during_post_is_accepted_and_dispatched_later(broker, api, user):
    from jobs.services.definitions import job_create

    job = job_create(name="outage", kind="jobs.ping", params={"echo": "later"}, owner=user)
    broker.proxy.disable()
    response = api.post(f"/api/jobs/{job.id}/trigger/", {}, format="json")
    assert response.status_code == 202
    run = JobRun.objects.get(id=response.json()["id"])
    assert run.status == RunStatus.QUEUED and run.dispatched_at is None

    assert maintenance.runs_dispatch_pending()["published"] == 0  # still down: nothing lost, nothing published
    broker.proxy.enable()
    assert maintenance.runs_dispatch_pending()["published"] == 1
    assert wait_status(run, RunStatus.SUCCESS).result["echo"] == "later"


def test_a_retry_whose_message_was_never_published_is_dispatched_again(broker, effects, settings):
    from datetime import timedelta

    from django.utils import timezone

    # As if an attempt failed while the broker was down: RETRY recorded and due, no message ever published.
    due = timezone.now() - timedelta(seconds=settings.RUN_MESSAGE_LOST_AFTER_SECONDS + 5)
    lost = JobRun.objects.create(kind="tests.flaky", queue=Queue.JOBS, args={"key": "retry-lost"}, status=RunStatus.RETRY,
                                 attempts=1, max_attempts=4, due_at=due, dispatched_at=due)
    assert maintenance.runs_dispatch_pending()["published"] == 1
    assert wait_status(lost, RunStatus.SUCCESS).attempts == 2
    assert effects() == {"retry-lost": "2"}


def test_a_duplicate_message_for_a_retry_before_its_due_time_runs_no_attempt(celery_worker, effects):
    from datetime import timedelta

    from django.utils import timezone

    waiting = JobRun.objects.create(kind="tests.flaky", queue=Queue.JOBS, args={"key": "too-early"},
                                    status=RunStatus.RETRY, attempts=1, max_attempts=4,
                                    due_at=timezone.now() + timedelta(seconds=60), dispatched_at=timezone.now())
    runs.run_dispatch(run=waiting)
    wait_until(lambda: celery_worker.log_records(message="run not claimable; skipped", run_id=str(waiting.id)),
               message="the early message to be acknowledged and skipped")
    after = JobRun.objects.get(id=waiting.id)
    assert (after.status, after.attempts) == (RunStatus.RETRY, 1)
    assert effects() == {}
    # Nor does the watchdog send it again while its own countdown is still pending.
    assert maintenance.runs_dispatch_pending()["published"] == 0


def test_a_retry_waits_for_its_countdown_even_when_the_watchdog_runs(celery_worker, effects):
    run = enqueue("tests.flaky", key="hinted-wait", fail_times=1, retry_after=2)
    wait_status(run, RunStatus.RETRY)
    assert maintenance.runs_dispatch_pending()["published"] == 0
    final = wait_status(run, RunStatus.SUCCESS)
    assert final.attempts == 2
    first, = final.attempt_log
    gap = final.finished_at - JobRun.objects.get(id=run.id).started_at
    assert first["delay"] == 2.0 and gap.total_seconds() >= 2.0


def test_cancel_while_no_worker_runs_means_the_body_never_runs(celery_worker, effects):
    celery_worker.stop()
    run = enqueue("tests.effect", key="never", seconds=0.0)
    cancelled = steering.run_cancel(run=run)
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
    steering.run_cancel(run=JobRun.objects.get(id=run.id))
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
    retried, created = steering.run_retry(run=JobRun.objects.get(id=run.id), triggered_by="shell")
    assert created
    assert retried.retry_of_id == run.id and retried.args == final.args
    assert wait_status(retried, RunStatus.SUCCESS).result == {"attempt": 1}
    assert "after-outage" in effects()
    assert len(effects("final-failure:")) == 1


def test_soft_time_limit_follows_the_retry_policy_and_logs_each_attempt(celery_worker, effects):
    from django_celery_results.models import TaskResult

    run = enqueue("tests.effect", key="too-slow", seconds=6.0)
    final = wait_status(run, RunStatus.FAILURE, timeout=30)
    assert final.attempts == final.max_attempts == 3
    assert final.error == "timed out after 3 s" and final.dead
    assert [(e["attempt"], e["event"]) for e in final.attempt_log] == [(1, "timed out"), (2, "timed out"),
                                                                      (3, "timed out")]
    assert effects() == {f"timeout-cleanup:too-slow:{n}": "" for n in (1, 2, 3)}
    assert TaskResult.objects.get(task_id=str(run.id)).status == "FAILURE"


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


def test_a_cancelled_body_that_ignores_progress_is_terminated_within_the_grace(celery_worker, effects, settings):
    from django_celery_results.models import TaskResult

    run = enqueue("tests.stubborn", key="stubborn", seconds=60)
    wait_status(run, RunStatus.STARTED)
    asked = time.monotonic()
    steering.run_cancel(run=JobRun.objects.get(id=run.id))
    final = wait_status(run, RunStatus.REVOKED, timeout=settings.CANCEL_GRACE_SECONDS + 10)
    assert time.monotonic() - asked < settings.CANCEL_GRACE_SECONDS + 5
    # The worker process that held it was terminated: the worker replaces it and serves the next run.
    wait_until(lambda: celery_worker.log_records(message="run ignored its cancel; terminated", run_id=str(run.id)),
               message="the grace enforcement to be logged")
    assert TaskResult.objects.get(task_id=str(run.id)).status == "REVOKED"
    assert [entry["event"] for entry in final.attempt_log] == ["cancelled"]
    assert wait_status(enqueue("jobs.ping"), RunStatus.SUCCESS)
    assert effects() == {}


def test_final_writes_of_a_cancelled_run_are_never_committed(celery_worker, effects):
    from django_celery_results.models import TaskResult

    run = enqueue("tests.committing", key="must-not-land", seconds=1.5)
    wait_status(run, RunStatus.STARTED)
    steering.run_cancel(run=JobRun.objects.get(id=run.id))
    final = wait_status(run, RunStatus.REVOKED, timeout=10)
    time.sleep(2)  # past the moment the body would have committed
    assert effects() == {}
    assert JobRun.objects.get(id=run.id).status == RunStatus.REVOKED and final.result is None
    assert TaskResult.objects.get(task_id=str(run.id)).status == "REVOKED"


def test_a_run_terminated_through_celery_ends_revoked_at_once(celery_worker, effects):
    from jobs.broker import run_revoke_broadcast

    run = enqueue("tests.stubborn", key="terminated-outside", seconds=60)
    wait_status(run, RunStatus.STARTED)
    run_revoke_broadcast(run_id=str(run.id), terminate=True)  # as Flower's "terminate" does
    final = wait_status(run, RunStatus.REVOKED, timeout=10)
    assert final.cancel_requested
    assert effects() == {}


def test_ten_concurrent_retries_of_one_dead_run_make_one_new_run(celery_worker):
    import threading

    dead = enqueue("tests.flaky", key="dead-once", permanent=True)
    wait_status(dead, RunStatus.FAILURE)
    barrier = threading.Barrier(10)
    answers: list[str] = []

    def ask():
        from django.db import connection as thread_connection

        barrier.wait()
        try:
            new_run, _ = steering.run_retry(run=JobRun.objects.get(id=dead.id), triggered_by="api")
            answers.append(str(new_run.id))
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 10 and len(set(answers)) == 1
    assert JobRun.objects.filter(retry_of=dead.id).count() == 1
    # retry_failed (the shell's way) does not retry it again either.
    assert dead.id not in {run.id for run in steering.runs_retry_failed(dry_run=True)}


def test_completed_runs_cost_three_writes_and_agree_with_celery_results(celery_worker):
    from django_celery_results.models import TaskResult

    run = enqueue("jobs.ping", echo="agree")
    final = wait_status(run, RunStatus.SUCCESS)
    stored = TaskResult.objects.get(task_id=str(run.id))
    assert (stored.status, stored.task_name) == ("SUCCESS", "jobs.ping")
    assert json.loads(stored.result)["echo"] == "agree" == final.result["echo"]
    assert stored.date_done == final.finished_at


def test_a_postgres_outage_during_work_loses_and_repeats_nothing(celery_worker, effects):
    """The worker reaches PostgreSQL through a proxy the test cuts for ten seconds, mid-work."""
    from tests.support import worker as worker_support
    from tests.support.proxy import TcpProxy

    db = connection.settings_dict
    proxy = TcpProxy(target_host=db.get("HOST") or "127.0.0.1", target_port=int(db.get("PORT") or 5432))
    proxied_url = worker_support.test_database_url().replace(f":{db.get('PORT') or 5432}/", f":{proxy.port}/")
    celery_worker.stop()
    proxied = worker_support.worker("pg-proxied", DATABASE_URL=proxied_url).start()
    try:
        wait_for_worker("pg-proxied")
        busy = [enqueue("tests.progress", key=f"outage-{n}", calls=30, interval=0.1) for n in range(4)]
        committing = [enqueue("tests.committing", key=f"outage-commit-{n}", seconds=1.0) for n in range(4)]
        wait_until(lambda: JobRun.objects.filter(status__in=RUNNING_STATUSES).exists(), message="work in flight")
        proxy.disable()
        time.sleep(10)
        queued_meanwhile = [enqueue("tests.effect", key=f"outage-late-{n}") for n in range(4)]
        proxy.enable()
        back = time.monotonic()
        every = [run.id for run in busy + committing + queued_meanwhile]
        wait_until(lambda: JobRun.objects.filter(id__in=every, status=RunStatus.SUCCESS).count() == len(every),
                   timeout=90, interval=0.5, message="every run to finish after PostgreSQL came back")
        assert time.monotonic() - back < 90
        assert effects("outage") == {**{f"outage-{n}": "30" for n in range(4)},
                                     **{f"outage-commit-{n}": "" for n in range(4)},
                                     **{f"outage-late-{n}": "" for n in range(4)}}
    finally:
        proxy.enable()
        proxied.stop()


def _machine_of(run: JobRun, machines: dict) -> str:
    """Which machine's worker ran the attempt: `worker` is the pool process (host:pid), a child of
    the worker's main process."""
    from pathlib import Path

    pid = int(run.worker.rsplit(":", 1)[1])
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return next(name for name, machine in machines.items() if machine.proc.pid == parent)


def test_two_machines_share_the_queues_and_one_lost_mid_run_leaves_its_run_to_the_other(
        celery_worker_process, transactional_db, effects, settings):
    """Two workers on the same queues, database and broker, as two machines would run them: the
    work spreads over both, and when one dies mid-run the other finishes that run, once."""
    from collections import Counter

    from tests.support.worker import worker

    celery_worker_process.stop()
    machines = {name: worker(name, concurrency=1).start() for name in ("machine-a", "machine-b")}
    try:
        for name in machines:
            wait_for_worker(name)
        spread = [enqueue("tests.effect", key=f"spread-{n}", seconds=0.3) for n in range(8)]
        finished = [wait_status(run, RunStatus.SUCCESS) for run in spread]
        assert set(Counter(_machine_of(run, machines) for run in finished)) == set(machines)

        lost = enqueue("tests.effect", key="machine-lost", seconds=2.0)
        held = wait_until(lambda: (run := JobRun.objects.get(id=lost.id)).status == RunStatus.PROGRESS and run,
                          message="the run in flight")
        dead = _machine_of(held, machines)
        machines[dead].kill()
        wait_until(lambda: maintenance.runs_reap_stale()["requeued"] == 1,
                   timeout=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 5, interval=0.5, message="the lost run re-queued")
        final = wait_status(lost, RunStatus.SUCCESS)
        assert _machine_of(final, machines) != dead and final.lease == held.lease + 1
        assert [entry["event"] for entry in final.attempt_log] == ["worker lost"]
        assert effects("machine-lost") == {"machine-lost": ""}
    finally:
        for machine in machines.values():
            machine.stop()


def test_a_reaped_run_is_claimed_before_runs_queued_earlier(celery_worker_process, transactional_db, settings):
    """Taken-over work goes ahead of fresh work on its queue: it was accepted before all of it."""
    from datetime import timedelta

    from django.utils import timezone

    from jobs import lifecycle
    from tests.support import worker as worker_support

    celery_worker_process.stop()
    fresh = [enqueue("tests.effect", key=f"fresh-{n}") for n in range(5)]
    lost = lifecycle.run_accept(kind="tests.effect", queue=Queue.JOBS, args={"key": "lost"}, max_attempts=3)
    lifecycle.run_claim(run_id=str(lost.id), worker="gone:1")
    JobRun.objects.filter(id=lost.id).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 1))
    assert maintenance.runs_reap_stale()["requeued"] == 1

    one_at_a_time = worker_support.worker("ordered-worker", concurrency=1).start()
    try:
        wait_until(lambda: JobRun.objects.filter(id__in=[r.id for r in [*fresh, lost]], status="SUCCESS").count() == 6,
                   timeout=90, message="every run to finish")
    finally:
        one_at_a_time.stop()
    order = list(JobRun.objects.filter(id__in=[r.id for r in [*fresh, lost]]).order_by("claimed_at")
                 .values_list("id", flat=True))
    assert order[0] == lost.id
    assert order[1:] == [r.id for r in fresh]  # fresh work keeps its own order behind it


def test_a_worker_process_loads_its_kinds_models_before_it_takes_a_message(celery_worker_process, transactional_db):
    """A message waiting when the worker starts is claimed only after the pool process has loaded
    the embedding model its queues' kinds declare: no run's time limit pays for start-up."""
    from datetime import datetime

    from tests.support import worker as worker_support

    celery_worker_process.stop()
    run = enqueue("tests.effect", key="after-warm-up")
    warm = worker_support.worker("warm-worker", concurrency=1, WORKER_WARM_UP="1").start()
    try:
        final = wait_status(run, RunStatus.SUCCESS, timeout=90)
    finally:
        warm.stop()
    loaded = warm.log_records(message="worker process warmed up", warm_up="ingest_warm_up")
    assert loaded, "the pool process did not warm up"
    warmed_at = datetime.strptime(loaded[0]["time"], "%Y-%m-%d %H:%M:%S,%f").astimezone()
    assert warmed_at <= final.claimed_at
    assert warm.log_records(message="embedding model loaded")


# --- Celery's own calls ---------------------------------------------------------------------------

def test_delay_on_a_tracked_task_records_a_run_and_its_result_is_celerys(celery_worker):
    """From the shell, as every Celery user calls a task: `.delay()` makes the run through the
    service, and `.get()` answers with what the body returned."""
    from jobs.tasks import test_celery

    result = test_celery.delay()
    answer = result.get(timeout=30)
    assert answer["status"] == "success" and answer["message"] == "Celery is configured and working properly!"
    assert answer["worker"]
    run = JobRun.objects.get(id=result.id)
    assert (run.status, run.triggered_by, run.owner_id) == (RunStatus.SUCCESS, "shell", None)
    assert result.state == "SUCCESS"


def test_async_result_of_a_running_run_shows_its_progress_and_revoke_is_the_durable_cancel(celery_worker, effects):
    from celery.result import AsyncResult

    from tests.support.tasks import countdown

    result = countdown.delay(steps=40, interval=0.2)
    plain = AsyncResult(result.id)  # any code's AsyncResult, not only the one .delay() returned
    wait_until(lambda: plain.state == "PROGRESS" and plain.info["current"] >= 2, timeout=30,
               message="PROGRESS with counts")
    assert plain.info["total"] == 40 and plain.info["step"] == "counting down"
    result.revoke()
    assert JobRun.objects.get(id=result.id).cancel_requested  # the flag first: it holds whatever the broker does
    wait_until(lambda: plain.state == "REVOKED", timeout=30, message="the run to end REVOKED")
    with pytest.raises(TypeError, match="by name"):
        countdown.delay(40)


def test_a_pending_run_reads_pending_and_an_unknown_id_reads_as_celery_says(celery_worker_process, transactional_db):
    from celery.result import AsyncResult

    celery_worker_process.stop()  # the run waits
    waiting = enqueue("tests.effect", key="pending")
    assert AsyncResult(str(waiting.id)).state == "PENDING" and AsyncResult(str(waiting.id)).info is None
    assert AsyncResult("not-a-run").state == "PENDING"
