"""The only code that speaks to the broker: Celery's control API, kombu and Redis live here.

Publishing a run's message, revoking and terminating, reading what waits in a queue, pinging the
workers and the broker, and the beat leader's lock. Everything else asks these functions, so a
change of broker (Redis or RabbitMQ) or of Celery's API is made in one module.

Where a run's message stands in line: resumed work (a run taken over from a lost worker, handed
back after a database outage, or whose message vanished) was accepted before anything now waiting,
so it is published ahead of fresh work on its own queue; it restarts as soon as a worker of that
queue is free instead of waiting behind the whole queue a second time.

Broker priorities, not a resume queue of its own: a worker reading several queues rotates between
them (kombu's round-robin cycle), so "read this queue first" is not something a worker can be told,
whereas priorities are strict on both brokers. On Redis, kombu keeps one list per priority step
(settings' CELERY_BROKER_TRANSPORT_OPTIONS) and asks for all of a worker's lists in one BRPOP,
step 0 first. On RabbitMQ higher numbers go first.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, TypeVar

from celery import current_app, signals
from django.conf import settings
from kombu import serialization
from kombu.exceptions import OperationalError as KombuOperationalError
from kombu.utils.uuid import uuid
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.breaker import breaker_for
from core.logging import CORRELATION_HEADER

logger = logging.getLogger(__name__)

T = TypeVar("T")
# A queue longer than this is not read message by message; its runs count as published.
BROKER_SCAN_MAX_MESSAGES = 20_000


def _redis_steps() -> list[int] | None:
    steps = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("priority_steps")
    return list(steps) if steps else None


def publish_priority(*, resume: bool) -> int:
    """The priority a run's message is published with: resumed work first, then fresh work."""
    steps = _redis_steps()
    if steps:
        return steps[0] if resume else steps[-1]
    # Celery declares RabbitMQ queues with x-max-priority CELERY_TASK_QUEUE_MAX_PRIORITY.
    return settings.CELERY_TASK_QUEUE_MAX_PRIORITY if resume else 0


def redis_queue_keys(queue: str) -> list[str]:
    """The Redis lists holding `queue`'s waiting messages, in the order a worker reads them."""
    return [redis_queue_key(queue, step) for step in (_redis_steps() or [0])]


def redis_queue_key(queue: str, step: int) -> str:
    """The Redis list of `queue`'s messages of one priority step (kombu's naming)."""
    sep = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("sep", "\x06\x16")
    return queue if step == 0 else f"{queue}{sep}{step}"



def celery_app():
    """The project's Celery app (the current one in every process Django configures)."""
    return current_app._get_current_object()


# --- the breaker -------------------------------------------------------------------------------

class BrokerUnavailable(Exception):
    """The broker failed this call, or another one a moment ago (its breaker is open)."""


def _breaker():
    return breaker_for(settings.CELERY_BROKER_URL)


def _connection_dropped(exc: BaseException) -> bool:
    """Whether `exc` is a connection the server closed or refused (Redis restarted, a pooled
    connection gone stale), which one immediate retry on a new connection may cure. A timeout is
    not: a frozen server would cost the caller its timeout twice."""
    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, (TimeoutError, RedisTimeoutError)):
            return False
        if isinstance(error, (ConnectionError, RedisConnectionError)):
            return True
    return False


def _unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the broker did not answer (refused, reset, timed out), in the words of
    the socket, redis-py or kombu (which wraps the others when Celery publishes)."""
    return any(isinstance(error, (OSError, KombuOperationalError, RedisConnectionError, RedisTimeoutError))
               for error in (exc, exc.__cause__, exc.__context__))


def _ask(call: Callable[[], T], *, force: bool = False) -> T:
    """Every call to the broker goes through here: skipped at once while the broker's breaker is
    open (unless `force`d: the watchdog probing for recovery), retried once on a dropped
    connection, and a failure trips the breaker, so that during an outage only one call per window
    pays the connection timeout. Raises BrokerUnavailable."""
    breaker = _breaker()
    if breaker.is_open and not force:
        raise BrokerUnavailable(f"broker unreachable a moment ago; asked again in {breaker.seconds_left():.1f} s")
    try:
        try:
            result = call()
        except Exception as exc:
            if not _connection_dropped(exc):
                raise
            result = call()
    except Exception as exc:
        # Only the broker's silence trips the breaker; a message we cannot parse does not stop
        # everyone's publishing. Either way the caller gets one type to handle.
        if _unreachable(exc):
            breaker.trip(cause=exc)
        raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
    breaker.reset()
    return result


# --- publishing ---------------------------------------------------------------------------------

def run_message_publish(*, task_name: str, run_id: str, queue: str, correlation_id: str, kwargs_repr: str,
                        resume: bool, force: bool = False) -> None:
    """The run's one message: its id is the run's, it carries only the run id. Raises
    BrokerUnavailable when the broker cannot take it.

    On a plain Redis broker the message Celery would send is written with one LPUSH
    (_RedisPublisher); elsewhere Celery sends it."""
    headers = {CORRELATION_HEADER: correlation_id} if correlation_id else {}
    priority = publish_priority(resume=resume)
    publisher = _redis_publisher()
    if publisher is not None:
        message = publisher.message(task_name=task_name, task_id=run_id, kwargs={"run_id": run_id}, queue=queue,
                                    headers=headers, kwargs_repr=kwargs_repr, priority=priority)
        _ask(lambda: publisher.push(message), force=force)
        return
    _ask(lambda: celery_app().send_task(
        task_name,
        kwargs={"run_id": run_id},
        task_id=run_id,
        queue=queue,
        headers=headers or None,
        # What Flower and `celery inspect` show: the document / message / job the task is about.
        kwargsrepr=kwargs_repr,
        priority=priority,
        retry=False,
    ), force=force)


@dataclass(frozen=True)
class _RedisMessage:
    key: str  # the list of its queue's priority step
    payload: str
    task_name: str
    body: tuple
    headers: dict
    queue: str


class _RedisPublisher:
    """Writes a task message to a Redis broker as Celery and kombu do, in a fraction of the time.

    Celery's send_task spends ~0.3 ms of Python per message (routing, the producer pool, kombu's
    serialiser registry, a new redis client object per publish) around an LPUSH of ~0.02 ms: two
    thirds of a run's enqueue (bench/task_overhead.py, profiled). Here Celery's own `as_task_v2`
    builds the headers and body, the envelope is kombu's Redis transport's (the worker reads it with
    kombu, unchanged), and the LPUSH goes to the list of the message's priority step over a kept
    connection pool. Celery's before/after_task_publish signals are sent as Celery sends them, so
    what listens to publishing (the correlation id, tracing) sees every message.
    tests/jobs/test_broker.py holds the message to what Celery writes for the same task."""

    def __init__(self, app) -> None:
        import redis

        options = app.conf.broker_transport_options
        self.app = app
        # The transport's own timeouts: short in a web process, patient in a worker (project.celery).
        self.client = redis.Redis.from_url(app.conf.broker_url, socket_timeout=options.get("socket_timeout"),
                                           socket_connect_timeout=options.get("socket_connect_timeout"))

    def message(self, *, task_name: str, task_id: str, kwargs: dict, queue: str, headers: dict, kwargs_repr: str,
                priority: int) -> _RedisMessage:
        app = self.app
        parent = app.current_worker_task  # as send_task does: a message sent by a task names it its parent
        task_headers, properties, body, _ = app.amqp.as_task_v2(
            task_id, task_name, kwargs=kwargs, kwargsrepr=kwargs_repr, reply_to=app.thread_oid,
            root_id=(parent.request.root_id or parent.request.id) if parent else None,
            parent_id=parent.request.id if parent else None)
        task_headers.update(headers)
        signals.before_task_publish.send(sender=task_name, body=body, exchange="", routing_key=queue, declare=None,
                                         headers=task_headers, properties=properties, retry_policy=None)
        content_type, content_encoding, encoded = serialization.dumps(body, serializer=app.conf.task_serializer)
        envelope = {
            "body": base64.b64encode(encoded if isinstance(encoded, bytes) else encoded.encode()).decode(),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": task_headers,
            "properties": {**properties, "delivery_mode": 2, "delivery_info": {"exchange": "", "routing_key": queue},
                           "priority": priority, "body_encoding": "base64", "delivery_tag": uuid()},
        }
        return _RedisMessage(key=redis_queue_key(queue, priority), payload=json.dumps(envelope), task_name=task_name,
                             body=body, headers=task_headers, queue=queue)

    def push(self, message: _RedisMessage) -> None:
        self.client.lpush(message.key, message.payload)
        signals.after_task_publish.send(sender=message.task_name, body=message.body, headers=message.headers,
                                        exchange="", routing_key=message.queue)


# (process id, broker URL) and the publisher made for them, replaced as one value (request threads
# share it).
_publisher: tuple[tuple[int, str], _RedisPublisher | None] | None = None


def _redis_publisher() -> _RedisPublisher | None:
    """This process's direct publisher for the broker configured now, or None where Celery must
    send: a broker other than plain Redis (RabbitMQ, Sentinel, TLS with its options), prefixed keys,
    compressed messages, "task-sent" events wanted, or Sentry on (its Celery integration adds the
    trace inside send_task).
    Made at first use, after a worker has set its patient timeouts; a fork makes its own."""
    global _publisher
    app = celery_app()
    key = (os.getpid(), app.conf.broker_url)
    made = _publisher
    if made is None or made[0] != key:
        direct = (key[1].split("://", 1)[0] == "redis" and not app.conf.task_compression
                  and not app.conf.task_send_sent_event
                  and not app.conf.broker_transport_options.get("global_keyprefix") and not settings.SENTRY_DSN)
        made = _publisher = (key, _RedisPublisher(app) if direct else None)
    return made[1]


def task_send_later(*, task_name: str, kwargs: dict, queue: str, countdown: float) -> None:
    _ask(lambda: celery_app().send_task(task_name, kwargs=kwargs, queue=queue, countdown=countdown, retry=False))


def run_revoke_broadcast(*, run_id: str, terminate: bool = False) -> None:
    """Tell every worker to drop the run's message; with `terminate`, to end the process running it
    (SIGTERM: the pool replaces it). Raises BrokerUnavailable when the broker cannot take it."""
    if terminate:
        _ask(lambda: celery_app().control.revoke(run_id, terminate=True, signal="SIGTERM"))
    else:
        _ask(lambda: celery_app().control.revoke(run_id))


# --- reading the broker -------------------------------------------------------------------------

def message_ids_held(*, queues: list[str], delivered_since: float) -> set[str] | None:
    """Task ids whose message the broker holds: waiting in a queue, or delivered to a worker since
    `delivered_since` (a Unix time) or due later than it (a countdown). None when the broker cannot
    be read this way (unreachable, a queue too long to scan, or an AMQP queue with messages ready).

    AMQP lets no one read a queue without taking its messages, but a queue with none ready holds
    none of these runs' messages but those a worker has prefetched and not yet started; sending
    those again costs one duplicate, which the claim makes a no-op."""
    def read() -> set[str] | None:
        ids: set[str] = set()
        with celery_app().connection_for_read() as conn:
            channel = conn.default_channel
            client = getattr(channel, "client", None)
            if client is None:
                return set() if all(_amqp_queue_depth(conn, queue) == 0 for queue in queues) else None
            for key in (key for queue in queues for key in redis_queue_keys(queue)):
                if client.llen(key) > BROKER_SCAN_MAX_MESSAGES:
                    return None
                ids.update(_message_id(raw) for raw in client.lrange(key, 0, -1))
            delivered_at = dict(client.zrange(channel.unacked_index_key, 0, -1, withscores=True))
            for tag, raw in client.hgetall(channel.unacked_key).items():
                message = json.loads(raw)[0]
                eta = (message.get("headers") or {}).get("eta")
                due = _timestamp(eta) if eta else None
                if delivered_at.get(tag, 0) >= delivered_since or (due is not None and due >= delivered_since):
                    ids.add(str((message.get("headers") or {}).get("id") or ""))
        ids.discard("")
        return ids

    try:
        return _ask(read)
    except BrokerUnavailable as exc:
        logger.warning("broker not readable; relying on ages", extra={"cause": str(exc)})
        return None


def _message_id(raw) -> str:
    try:
        return str((json.loads(raw).get("headers") or {}).get("id") or "")
    except (ValueError, AttributeError):
        return ""


def _timestamp(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except (TypeError, ValueError):
        return None


def queue_depths(*, queues: list[str]) -> dict[str, int | None]:
    """Messages waiting in each queue (Redis: its lists' lengths, every priority; AMQP: a passive
    declare's count); None where the broker cannot be read."""
    def read() -> dict[str, int | None]:
        with celery_app().connection_for_read() as conn:
            client = getattr(conn.default_channel, "client", None)
            if client is None:
                return {queue: _amqp_queue_depth(conn, queue) for queue in queues}
            return {queue: sum(int(client.llen(key)) for key in redis_queue_keys(queue)) for queue in queues}

    try:
        return _ask(read)
    except BrokerUnavailable:
        return {queue: None for queue in queues}


def _amqp_queue_depth(conn, queue: str) -> int:
    """Messages ready in an AMQP queue, asked by a passive declare, which creates nothing. A queue
    never declared has held nothing: 0. The broker closes the channel of a refused declare, so
    each question has a channel of its own."""
    channel = conn.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except conn.channel_errors:
        return 0
    finally:
        try:
            channel.close()
        except conn.channel_errors + conn.connection_errors:
            pass


def broker_ping() -> str:
    """'reachable', or raises BrokerUnavailable: one connection attempt within the broker's timeout,
    none while its breaker is open."""
    def ping() -> str:
        with celery_app().connection_for_write() as conn:
            conn.ensure_connection(max_retries=0)
            client = getattr(conn.default_channel, "client", None)
            if client is not None:  # Redis answers a PING; with AMQP the connection is the answer
                client.ping()
        return "reachable"

    return _ask(ping)


def workers_ping(*, timeout: float, only: list[str] | None = None, expected: int | None = None) -> list[str]:
    """The names of the workers that answer a ping within `timeout`. Celery collects replies until
    then, so this takes the whole timeout, unless `only` names the workers asked or `expected` says
    how many replies to wait for (every worker is still asked): then it returns as soon as that
    many have answered. Raises BrokerUnavailable."""
    limit = len(only) if only else expected
    replies = _ask(lambda: celery_app().control.ping(timeout=timeout, destination=only, limit=limit)) or []
    return sorted(name for reply in replies for name in reply)


def workers_inspect(*, timeout: float) -> dict:
    """What `celery inspect` says of each worker: its queues, active, reserved and scheduled tasks.

    A broadcast waits its whole timeout unless told how many replies to expect: one question finds
    the workers (and their queues), then each other goes to exactly those and returns as soon as
    all have answered."""
    control = celery_app().control
    queues = _ask(lambda: control.inspect(timeout=timeout).active_queues()) or {}
    workers = sorted(queues)
    if not workers:
        return {}
    inspect = control.inspect(destination=workers, limit=len(workers), timeout=timeout)
    active, reserved, scheduled = (_ask(ask) or {} for ask in (inspect.active, inspect.reserved, inspect.scheduled))
    return {name: {"queues": [q["name"] for q in queues.get(name, [])], "active": active.get(name),
                   "reserved": reserved.get(name), "scheduled": scheduled.get(name)} for name in workers}


def queues_consumed() -> set[str]:
    """The queues this worker process reads (all declared ones outside a worker)."""
    queues = celery_app().amqp.queues
    return set(queues.consume_from or queues)


# --- the beat leader's lock ---------------------------------------------------------------------

# Extend only if we still own the lock: compare-and-set in one round trip.
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LockUnavailable(Exception):
    """Redis did not answer the lock's question: nobody can say who leads."""


class LeaderLock:
    """A Redis key held by one process at a time, with an expiry it renews while it lives."""

    def __init__(self, *, key: str, token: str, ttl_seconds: float):
        import redis

        self.key, self.token, self.ttl_ms = key, token, int(ttl_seconds * 1000)
        self._errors = redis.RedisError
        # Beat's own patience (a daemon, no request waits on it); a frozen Redis costs a tick this long.
        patience = settings.WORKER_BROKER_TIMEOUT_SECONDS
        self._redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=patience, socket_connect_timeout=patience)

    def acquire_or_extend(self) -> bool:
        # Extended whenever the key still carries our token, held or not as this process last knew:
        # a Redis restarted from its append-only file, or a check that timed out after its write,
        # leaves our own lock there, and waiting for it to expire stopped beat for a whole TTL.
        try:
            if self._redis.eval(_EXTEND, 1, self.key, self.token, self.ttl_ms):
                return True
            return bool(self._redis.set(self.key, self.token, nx=True, px=self.ttl_ms))
        except self._errors as exc:
            raise LockUnavailable(str(exc)) from exc

    def holder(self) -> str | None:
        try:
            value = self._redis.get(self.key)
        except self._errors:
            return None
        return value.decode() if value else None

    def release(self) -> None:
        try:
            self._redis.eval(_RELEASE, 1, self.key, self.token)
        except self._errors:
            pass


# Where the count of readers of task events is asked: a task event's routing key ("task-succeeded"
# → "task.succeeded"), so what answers is what would receive task events.
TASK_PROBE_ROUTING_KEY = "task.probe"


def task_event_readers() -> int | None:
    """How many readers of task events are listening now, on a Redis broker; None where the broker
    cannot say (RabbitMQ's bindings are not readable over AMQP).

    On Redis, Celery's events are a fanout: each reader subscribes to a pattern of channels, and a
    publish answers how many received it. So this publishes an event message on a task event's
    channel whose body is an empty batch of events, which Celery's receivers (Flower's, `celery
    events`) process as no event at all. A reader that died took its subscription with it."""
    exchange = current_app.conf.event_exchange
    with current_app.connection_for_read() as connection:
        if connection.transport.driver_type != "redis":
            return None
        channel = connection.default_channel
        message = channel.prepare_message(json.dumps([]), content_type="application/json", content_encoding="utf-8")
        channel._inplace_augment_message(message, exchange, TASK_PROBE_ROUTING_KEY)
        return channel.client.publish(channel._get_publish_topic(exchange, TASK_PROBE_ROUTING_KEY),
                                      json.dumps(message))
