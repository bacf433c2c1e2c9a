"""Publishing and recovery of runs through real Redis, PostgreSQL, workers and beat."""

import time

import pytest
import redis
from django.conf import settings
from django.db import transaction

from core.breaker import breaker_for
from jobs import broker
from jobs.broker import redis_queue_keys
from jobs.constants import Queue
from jobs.models import JobRun, RunStatus
from jobs.selectors import queue_depths
from jobs.services import fan_out, maintenance, runs, steering
from tests.support.worker import wait_for_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_runs_whose_messages_vanished_from_the_broker_all_finish_within_a_minute(broker, beats, effects):
    broker.worker.stop()
    broker.messages_drop(queue=Queue.JOBS)  # what an earlier failed test may have left in the shared RabbitMQ
    with transaction.atomic():
        queued = [runs.run_enqueue(kind="tests.effect", args={"key": f"flushed-{n}"}) for n in range(12)]
    # RabbitMQ takes publishes without confirming them: the queue holds them all a moment later.
    wait_until(lambda: queue_depths()[Queue.JOBS] == 12, timeout=5, message="the twelve messages in the queue")
    broker.messages_drop(queue=Queue.JOBS)  # as a broker restarted with no persistence
    flushed = time.monotonic()

    broker.worker.start()
    beats("watchdog-beat", **broker.env)
    wait_for_worker(broker.worker_name)
    wait_until(lambda: JobRun.objects.filter(id__in=[r.id for r in queued], status=RunStatus.SUCCESS).count() == 12,
               timeout=60, interval=0.5, message="every lost run to finish")
    assert time.monotonic() - flushed < 60
    assert effects("flushed-") == {f"flushed-{n}": "" for n in range(12)}


def test_runs_held_in_the_broker_are_not_published_twice(celery_worker, effects):
    celery_worker.stop()
    with transaction.atomic():
        waiting = runs.run_enqueue(kind="tests.effect", args={"key": "once"})
    JobRun.objects.filter(id=waiting.id).update(dispatched_at=waiting.created_at.replace(year=2000))
    # Old, but its message is still in the queue (a backed-up queue): nothing to publish.
    assert str(waiting.id) in broker.message_ids_held(queues=[Queue.JOBS], delivered_since=time.time())
    assert maintenance.runs_dispatch_pending() == {"found": 1, "published": 0}
    assert queue_depths()[Queue.JOBS] == 1


def test_while_the_broker_is_down_each_202_answers_fast_and_nothing_is_lost(broker, api, user,
                                                                           celery_worker):
    from jobs.services.definitions import job_create

    job = job_create(name="outage-burst", kind="jobs.ping", owner=user)
    assert api.get(f"/api/jobs/{job.id}/").status_code == 200  # the URLconf and views loaded: not timed
    broker.proxy.disable()
    timings, run_ids = [], []
    try:
        for _ in range(20):
            started = time.monotonic()
            response = api.post(f"/api/jobs/{job.id}/trigger/", {}, format="json")
            timings.append(time.monotonic() - started)
            assert response.status_code == 202
            run_ids.append(response.json()["id"])
    finally:
        broker.proxy.enable()
    # Within the second every request is promised, and never the broker's 2 s connect timeout.
    assert max(timings) < 1.0, [round(t, 3) for t in timings]
    assert JobRun.objects.filter(id__in=run_ids, status=RunStatus.QUEUED, dispatched_at__isnull=True).count() == 20
    breaker_for(settings.CELERY_BROKER_URL).reset()  # as once its window has passed
    assert maintenance.runs_dispatch_pending()["published"] == 20
    wait_until(lambda: JobRun.objects.filter(id__in=run_ids, status=RunStatus.SUCCESS).count() == 20,
               timeout=60, message="every run accepted during the outage to finish")


def test_retrying_through_the_api_twice_answers_with_the_same_run(api, user):
    from tests.factories import JobRunFactory

    dead = JobRunFactory(owner=user, status=RunStatus.FAILURE, dead=True)
    first = api.post(f"/api/runs/{dead.id}/retry/")
    second = api.post(f"/api/runs/{dead.id}/retry/")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert JobRun.objects.filter(retry_of=dead).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_published_message_says_what_the_task_is_about(celery_worker):
    import json

    celery_worker.stop()  # the message stays in the queue to be read
    with transaction.atomic():
        waiting = runs.run_enqueue(kind="tests.effect", args={"key": "about-" + "x" * 400})
    [fresh] = [key for key in redis_queue_keys("jobs") if redis.Redis.from_url(settings.REDIS_URL).llen(key)]
    raw = redis.Redis.from_url(settings.REDIS_URL).lindex(fresh, 0)
    shown = json.loads(raw)["headers"]["kwargsrepr"]  # what Flower and `celery inspect` display
    assert shown.startswith("{'key': 'about-xxx") and str(waiting.id) not in shown
    assert len(shown) == runs.KWARGS_REPR_CHARS and shown.endswith("…")


# --- fan-out: a parent and its children ---------------------------------------------------------

def fanned_out(user, key: str, **args) -> JobRun:
    with transaction.atomic():
        return runs.run_enqueue(kind="tests.fan_out", owner=user, args={"key": key, **args})


def test_a_fan_out_keeps_two_children_in_the_broker_and_ends_with_one_final_step(celery_worker, user, effects):
    parent = fanned_out(user, "wide", children=6, seconds=0.3)
    in_broker = []
    while not (current := JobRun.objects.get(id=parent.id)).is_finished:
        in_broker.append(JobRun.objects.filter(parent=parent, status__in=("QUEUED", "STARTED", "PROGRESS"),
                                               dispatched_at__isnull=False).count())
        time.sleep(0.05)
    assert current.status == RunStatus.SUCCESS and current.result == {"children": {"SUCCESS": 6}}
    assert max(in_broker) == 2
    assert effects("composed:wide") == {"composed:wide": "SUCCESS=6"}
    assert len(effects("child:wide:")) == 6
    # The hand-over to the children was not an attempt: the final step was attempt 1 of 1.
    assert (current.attempts, current.max_attempts) == (1, 1) and current.progress_current == 6


def test_a_worker_killed_mid_fan_out_loses_nothing_and_the_final_step_runs_once(celery_worker, user, effects,
                                                                                  settings):
    from jobs.services import maintenance

    parent = fanned_out(user, "killed", children=4, seconds=2.0)
    wait_until(lambda: JobRun.objects.filter(parent=parent, status=RunStatus.STARTED).count() == 2,
               timeout=30, message="two children in flight")  # they sleep without reporting progress
    celery_worker.kill()
    celery_worker.start()
    wait_for_worker("test-worker")
    # Once their heartbeat is stale the two lost children are taken over; the parent, held by no
    # worker, is never taken for lost.
    wait_until(lambda: maintenance.runs_reap_stale()["requeued"] == 2,
               timeout=settings.RUN_HEARTBEAT_TIMEOUT_SECONDS + 10, interval=0.5, message="children re-queued")
    final = wait_until(lambda: (r := JobRun.objects.get(id=parent.id)).is_finished and r, timeout=60,
                       message="the parent's final step")
    assert final.status == RunStatus.SUCCESS and final.result == {"children": {"SUCCESS": 4}}
    assert effects("composed:killed") == {"composed:killed": "SUCCESS=4"}
    assert len(effects("child:killed:")) == 4
    lost = JobRun.objects.filter(parent=parent, attempts=2)
    assert lost.count() == 2 and all(r.attempt_log[0]["event"] == "worker lost" for r in lost)


def test_a_failed_child_is_counted_and_the_parent_still_ends(celery_worker, user, effects):
    parent = fanned_out(user, "partly", children=3, failing=[1])
    wait_until(lambda: JobRun.objects.get(id=parent.id).is_finished, timeout=30, message="parent")
    assert effects("composed:partly") == {"composed:partly": "FAILURE=1,SUCCESS=2"}


def test_a_parent_whose_last_end_was_never_announced_is_resumed_by_the_watchdog(celery_worker, user, effects):
    from django.utils import timezone

    from jobs import lifecycle

    parent = lifecycle.run_accept(kind="tests.fan_out", queue=Queue.JOBS, owner=user, args={"key": "lost", "children": 1})
    claim = lifecycle.run_claim(run_id=str(parent.id), worker="gone:1")
    child = lifecycle.run_accept(kind="tests.child", queue=Queue.JOBS, owner=user, parent=parent,
                                 args={"key": "lost", "index": 0})
    assert lifecycle.run_await_children(run_id=str(parent.id), lease=claim.lease, total=1, step="children",
                                        message="")
    # The child ended, and its worker died before announcing it.
    JobRun.objects.filter(id=child.id).update(status=RunStatus.SUCCESS, finished_at=timezone.now())
    assert not JobRun.objects.get(id=parent.id).stalled  # awaiting holds no worker: never stale

    assert fan_out.runs_resume_parents() == 1
    wait_until(lambda: JobRun.objects.get(id=parent.id).status == RunStatus.SUCCESS, timeout=30,
               message="the resumed parent")
    assert effects("composed:lost") == {"composed:lost": "SUCCESS=1"}
    assert fan_out.runs_resume_parents() == 0


def test_cancelling_a_parent_revokes_it_and_its_children_at_once(user):
    from jobs import lifecycle

    # Accepted, not published: no worker may take them before the cancel.
    parent = lifecycle.run_accept(kind="tests.fan_out", queue=Queue.JOBS, owner=user, args={"key": "k", "children": 3})
    kids = [lifecycle.run_accept(kind="tests.child", queue=Queue.JOBS, owner=user, parent=parent,
                                 args={"key": "k", "index": i}) for i in range(3)]
    claim = lifecycle.run_claim(run_id=str(parent.id), worker="w:1")
    assert lifecycle.run_await_children(run_id=str(parent.id), lease=claim.lease, total=3, step="children",
                                        message="")
    assert steering.run_cancel(run=parent).status == RunStatus.REVOKED
    assert set(JobRun.objects.filter(id__in=[k.id for k in kids]).values_list("status", flat=True)) == {"REVOKED"}
    assert fan_out.runs_dispatch_waiting_children(parent_id=parent.id) == 0
