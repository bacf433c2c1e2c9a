"""Where a run's message stands in line (pure: settings only, no broker), and what the broker
module reads from RabbitMQ."""

import uuid

import pytest

from core.logging import CORRELATION_HEADER
from jobs.broker import publish_priority, queue_depths, redis_queue_keys
from tests.support.brokers import RABBITMQ_URL, rabbitmq_listens

needs_rabbitmq = pytest.mark.skipif(not rabbitmq_listens(), reason=f"no RabbitMQ listens at {RABBITMQ_URL}: start one "
                                    "there, or point TEST_RABBITMQ_URL at one, to run these tests")


@pytest.fixture
def rabbitmq_broker(monkeypatch, settings):
    """The broker module reads RabbitMQ, behind RabbitMQ's own breaker: the Redis one may still be
    open from a fault test run earlier in this process."""
    from jobs.broker import celery_app

    monkeypatch.setattr(celery_app().conf, "broker_read_url", RABBITMQ_URL)
    settings.CELERY_BROKER_URL = RABBITMQ_URL


def test_on_redis_resumed_work_takes_the_list_read_first_and_fresh_work_the_last(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"priority_steps": [0, 9], "sep": "\x06\x16"}
    assert publish_priority(resume=True) == 0
    assert publish_priority(resume=False) == 9
    assert redis_queue_keys("documents") == ["documents", "documents\x06\x169"]


def test_on_rabbitmq_resumed_work_has_the_highest_priority(settings):
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    settings.CELERY_TASK_QUEUE_MAX_PRIORITY = 9
    assert publish_priority(resume=True) == 9
    assert publish_priority(resume=False) == 0


def test_the_settings_give_redis_two_places_in_line():
    from django.conf import settings

    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["priority_steps"] == [0, 9]
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["queue_order_strategy"] == "priority"


def _confirmed_connection():
    """A connection whose publish returns once RabbitMQ has the message queued (publisher confirms):
    without, a question asked on another connection right after may find it not there yet."""
    from kombu import Connection

    return Connection(RABBITMQ_URL, transport_options={"confirm_publish": True})


@pytest.mark.integration
@needs_rabbitmq
def test_on_rabbitmq_queue_depths_come_from_a_passive_declare(rabbitmq_broker):
    from kombu import Exchange, Queue

    name = f"depth-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name), name, auto_delete=False)
    with _confirmed_connection() as connection:
        producer = connection.Producer()
        for n in range(3):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key=name, declare=[queue])
        try:
            assert queue_depths(queues=[name, f"{name}-never-declared"]) == {name: 3, f"{name}-never-declared": 0}
        finally:
            connection.default_channel.queue_delete(name)
            connection.default_channel.exchange_delete(name)


@pytest.mark.integration
@needs_rabbitmq
def test_on_rabbitmq_an_empty_queue_holds_no_message_and_a_busy_one_cannot_say(rabbitmq_broker):
    """The watchdog republishes a run whose message is missing once the broker says it holds
    none: on RabbitMQ, when its queue has no message ready; with messages ready, it cannot say."""
    from kombu import Exchange, Queue

    from jobs.broker import message_ids_held

    name = f"held-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, Exchange(name), name, auto_delete=False)
    with _confirmed_connection() as connection:
        queue(connection.default_channel).declare()
        try:
            assert message_ids_held(queues=[name], delivered_since=0) == set()
            connection.Producer().publish({"n": 1}, exchange=queue.exchange, routing_key=name)
            assert message_ids_held(queues=[name], delivered_since=0) is None
        finally:
            connection.default_channel.queue_delete(name)
            connection.default_channel.exchange_delete(name)


# --- publishing a run's message on Redis ------------------------------------------------------------

def _raw_messages(queue: str) -> list[dict]:
    """The messages waiting in `queue` (every priority list), as the Redis transport stores them."""
    import json

    from jobs.broker import celery_app

    client = celery_app().connection_for_write().default_channel.client
    raw = [json.loads(item) for key in redis_queue_keys(queue) for item in client.lrange(key, 0, -1)]
    client.delete(*redis_queue_keys(queue))
    return raw


def _what_a_worker_reads(message: dict) -> dict:
    import base64

    properties = {key: value for key, value in message["properties"].items()
                  # a fresh tag per message; Celery also copies its kwargsrepr option into the properties
                  if key not in ("delivery_tag", "kwargsrepr")}
    return {"body": base64.b64decode(message["body"]), "headers": message["headers"], "properties": properties,
            "content-type": message["content-type"], "content-encoding": message["content-encoding"]}


@pytest.mark.integration
@pytest.mark.parametrize("resume", [False, True])
def test_a_run_message_on_redis_is_the_one_celery_writes_and_carries_what_publish_signals_add(resume, settings):
    from celery import signals
    from django.conf import settings as live

    from jobs.broker import _redis_publisher, celery_app, run_message_publish

    assert live.CELERY_BROKER_URL.startswith("redis://") and _redis_publisher() is not None
    queue, run_id = f"publish-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    seen_after = []

    def traced(headers=None, **kwargs):  # what a tracing library does before a message leaves
        headers["traceparent"] = "00-trace-span-01"

    def published(headers=None, **kwargs):
        seen_after.append(headers["id"])

    signals.before_task_publish.connect(traced, weak=False)
    signals.after_task_publish.connect(published, weak=False)
    try:
        run_message_publish(task_name="tests.effect", run_id=run_id, queue=queue, correlation_id="req-7",
                            kwargs_repr="{'key': 'k'}", resume=resume)
        [direct] = _raw_messages(queue)
        celery_app().send_task("tests.effect", kwargs={"run_id": run_id}, task_id=run_id, queue=queue,
                               headers={CORRELATION_HEADER: "req-7"}, kwargsrepr="{'key': 'k'}",
                               priority=publish_priority(resume=resume), retry=False)
        [by_celery] = _raw_messages(queue)
    finally:
        signals.before_task_publish.disconnect(traced)
        signals.after_task_publish.disconnect(published)

    assert _what_a_worker_reads(direct) == _what_a_worker_reads(by_celery)
    assert direct["headers"]["traceparent"] == "00-trace-span-01" and direct["headers"][CORRELATION_HEADER] == "req-7"
    assert seen_after == [run_id, run_id]
    assert direct["properties"]["delivery_tag"] != by_celery["properties"]["delivery_tag"]


@pytest.mark.integration
def test_celery_sends_where_the_direct_publisher_would_leave_something_out(settings, monkeypatch):
    from jobs import broker

    assert broker._redis_publisher() is not None
    settings.SENTRY_DSN = "https://key@sentry.example/1"  # its integration traces inside send_task
    monkeypatch.setattr(broker, "_publisher", None)
    assert broker._redis_publisher() is None
    settings.SENTRY_DSN = ""
    monkeypatch.setitem(broker.celery_app().conf, "CELERY_TASK_SEND_SENT_EVENT", True)  # Flower's "sent" state
    monkeypatch.setattr(broker, "_publisher", None)
    assert broker._redis_publisher() is None
    monkeypatch.setitem(broker.celery_app().conf, "CELERY_TASK_SEND_SENT_EVENT", False)
    monkeypatch.setattr(broker, "_publisher", None)
    assert broker._redis_publisher() is not None
    monkeypatch.setenv("CELERY_BROKER_URL", RABBITMQ_URL)  # Celery reads the variable before its settings
    assert broker._redis_publisher() is None


@pytest.mark.integration  # a real Redis
def test_a_leader_lock_still_carrying_our_token_is_ours_at_once(settings):
    """Beat took itself for not holding its lock (a check failed while Redis was away), and Redis
    came back from its append-only file with the key still there: the same beat goes on scheduling
    at once, not after its own lock has expired; another beat still waits."""
    from jobs.broker import LeaderLock

    key = f"test:leader:{uuid.uuid4().hex}"
    ours = LeaderLock(key=key, token="beat-a", ttl_seconds=60)
    assert ours.acquire_or_extend()
    try:
        assert ours.acquire_or_extend()
        assert not LeaderLock(key=key, token="beat-b", ttl_seconds=60).acquire_or_extend()
        ours._redis.pexpire(key, 5_000)  # most of its time gone
        assert ours.acquire_or_extend() and ours._redis.pttl(key) > 5_000
    finally:
        ours.release()
    assert LeaderLock(key=key, token="beat-b", ttl_seconds=60).acquire_or_extend()
    ours._redis.delete(key)
