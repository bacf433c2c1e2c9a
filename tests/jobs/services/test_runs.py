"""Publishing and recovery of runs through real Redis, PostgreSQL, workers and beat."""

import time

import pytest
import redis
from django.conf import settings
from django.db import transaction

from jobs.models import JobRun, RunStatus
from jobs.services import runs
from tests.support.worker import wait_for_worker, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_runs_whose_messages_vanished_in_a_redis_flush_all_finish(celery_worker, beats, effects):
    celery_worker.stop()
    with transaction.atomic():
        queued = [runs.run_enqueue(kind="tests.effect", args={"key": f"flushed-{n}"}) for n in range(12)]
    assert redis.Redis.from_url(settings.REDIS_URL).llen("jobs") == 12
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # as a Redis restarted with no persistence
    flushed = time.monotonic()

    celery_worker.start()
    beats("watchdog-beat")
    wait_for_worker("test-worker")
    wait_until(lambda: JobRun.objects.filter(id__in=[r.id for r in queued], status=RunStatus.SUCCESS).count() == 12,
               timeout=90, interval=0.5, message="every flushed run to finish")
    assert time.monotonic() - flushed < 90
    assert effects("flushed-") == {f"flushed-{n}": "" for n in range(12)}


def test_runs_held_in_the_broker_are_not_published_twice(celery_worker, effects):
    celery_worker.stop()
    with transaction.atomic():
        waiting = runs.run_enqueue(kind="tests.effect", args={"key": "once"})
    JobRun.objects.filter(id=waiting.id).update(dispatched_at=waiting.created_at.replace(year=2000))
    # Old, but its message is still in the queue (a backed-up queue): nothing to publish.
    assert str(waiting.id) in runs.broker_message_ids(queues=["jobs"])
    assert runs.runs_dispatch_pending() == {"found": 1, "published": 0}
    assert redis.Redis.from_url(settings.REDIS_URL).llen("jobs") == 1


def test_while_the_broker_is_down_each_202_answers_fast_and_nothing_is_lost(api, user, broker_proxy,
                                                                           celery_worker):
    from jobs.services.definitions import job_create

    job = job_create(name="outage-burst", kind="jobs.ping", owner=user)
    broker_proxy.disable()
    timings, run_ids = [], []
    try:
        for _ in range(20):
            started = time.monotonic()
            response = api.post(f"/api/jobs/{job.id}/trigger/", {}, format="json")
            timings.append(time.monotonic() - started)
            assert response.status_code == 202
            run_ids.append(response.json()["id"])
    finally:
        broker_proxy.enable()
    assert max(timings) < 0.1, [round(t, 3) for t in timings]
    assert JobRun.objects.filter(id__in=run_ids, status=RunStatus.QUEUED, dispatched_at__isnull=True).count() == 20
    runs.publish_breaker.reset()
    assert runs.runs_dispatch_pending()["published"] == 20
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
    raw = redis.Redis.from_url(settings.REDIS_URL).lindex("jobs", 0)
    shown = json.loads(raw)["headers"]["kwargsrepr"]  # what Flower and `celery inspect` display
    assert shown.startswith(f"{{'run_id': '{waiting.id}', 'key': 'about-xxx")
    assert len(shown) == runs.KWARGS_REPR_CHARS and shown.endswith("…")
