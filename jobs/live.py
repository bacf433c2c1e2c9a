"""A run's live events: what happens to it as it happens, for the streams that push it to clients.

Every event of a run is published on its Redis channel (`run_events_key`) as `id\ntype\ndata`:
`status` after every transition commits (jobs.lifecycle), `progress` and `log` as the body reports
them, and what a body streams itself (a reply's `delta` and `reset`, through `ctx.stream`).
Followers (core.streams) are subscribed before they read the run, so they miss nothing live.

What a body streams is also kept, in a Redis stream under the same name, for RUN_EVENTS_KEEP_SECONDS:
a client that joins late or reconnects reads the text so far from there, by entry id (its
Last-Event-ID). Status, progress and log lines are not kept in Redis: they are the run's state in
the database, which a follower reads when it joins. So a million runs cost Redis nothing to keep;
only streamed text does.

The database stays the record: events may be lost (Redis down, restarted, the stream expired),
and a follower that finds them gone reads the run instead. So publishing never waits on Redis:
events go through an in-process queue to one publishing thread, which sends what has piled up in
one pipelined round trip. A frozen Redis stalls that thread, never a body or a request; past the
queue's bound new events are dropped and counted.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from core.streams import redis_for_streams

logger = logging.getLogger(__name__)

# Entries kept per run: a long reply is a few thousand deltas (fewer once coalesced), an ingestion a
# progress event every half second. Trimmed approximately (Redis trims whole nodes, cheaply).
RUN_EVENTS_MAX_ENTRIES = 20_000
# Events waiting for the publishing thread in one process: past this (Redis frozen for minutes
# under a stream of deltas) new ones are dropped; the run in the database is still whole.
PUBLISH_QUEUE_MAX = 50_000
# Entries sent in one pipeline at most: one round trip, bounded.
PUBLISH_BATCH_MAX = 500


def run_events_key(run_id) -> str:
    """The Redis stream of a run's events; also the name of the channel that announces new ones."""
    return f"runs:{run_id}:events"


@dataclass(frozen=True)
class RunEvent:
    run_id: str
    type: str
    data: dict
    kept: bool = False


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _data(encoded: str) -> dict:
    try:
        data = json.loads(encoded)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def entry_decode(fields: dict) -> tuple[str, dict]:
    """(type, data) of a kept entry as redis-py returns it (bytes or str keys and values)."""
    decoded = {_text(key): _text(value) for key, value in fields.items()}
    return decoded.get("type", ""), _data(decoded.get("data", "{}"))


def message_decode(payload) -> tuple[str, str, dict]:
    """(entry id, or "" for an event not kept; type; data) of a message on a run's channel."""
    entry_id, _, rest = _text(payload).partition("\n")
    event_type, _, data = rest.partition("\n")
    return entry_id, event_type, _data(data)


# Keep an event and announce it with its entry id, in one call: a follower that reads the stream
# and hears the channel sees each kept event once, by id.
_KEEP_AND_PUBLISH = r"""
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('PUBLISH', KEYS[1], id .. '\n' .. ARGV[2] .. '\n' .. ARGV[3])
return id
"""


def _coalesced(events: list[RunEvent]) -> list[RunEvent]:
    """Deltas of the same run that queued up back to back leave as one: the text is the same, the
    entries fewer (a follower far behind reads a reply in a few entries, not thousands)."""
    merged: list[RunEvent] = []
    for event in events:
        last = merged[-1] if merged else None
        if (event.type == "delta" and last is not None and last.type == "delta" and last.run_id == event.run_id
                and last.data.keys() == event.data.keys() == {"delta"}):
            merged[-1] = RunEvent(event.run_id, "delta", {"delta": last.data["delta"] + event.data["delta"]},
                                  kept=last.kept)
        else:
            merged.append(event)
    return merged


class _Publisher:
    """One daemon thread per process sends queued events to Redis in pipelines, in order."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._queue: queue.Queue[RunEvent] = queue.Queue(maxsize=PUBLISH_QUEUE_MAX)
        self._client: redis.Redis | None = None
        self._keep = None
        self._lock = threading.Lock()
        self.dropped = 0
        self._last_warning = 0.0

    def put(self, event: RunEvent) -> None:
        if self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            self._warn("run events dropped: the publishing queue is full (Redis slow or away)")

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked process inherits a copy of the queue and no thread: start afresh.
            self._queue = queue.Queue(maxsize=PUBLISH_QUEUE_MAX)
            self._client = None
            self._pid = os.getpid()
            threading.Thread(target=self._loop, daemon=True, name="run-events").start()

    def _redis(self) -> redis.Redis:
        if self._client is None:
            # Waits up to the workers' broker timeout for an answer: this thread is alone in waiting.
            self._client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=settings.WORKER_BROKER_TIMEOUT_SECONDS,
                                                socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS * 5)
            self._keep = self._client.register_script(_KEEP_AND_PUBLISH)
        return self._client

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < PUBLISH_BATCH_MAX:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._send(_coalesced(batch))
            except Exception as exc:  # Redis away: these events are lost; the database has the run
                self.dropped += len(batch)
                self._warn("run events not published", cause=type(exc).__name__)

    def _send(self, events: list[RunEvent]) -> None:
        pipe = self._redis().pipeline(transaction=False)
        for event in events:
            key = run_events_key(event.run_id)
            data = json.dumps(event.data, separators=(",", ":"), default=str)
            if event.kept:
                self._keep(keys=[key], args=[RUN_EVENTS_MAX_ENTRIES, event.type, data,
                                             settings.RUN_EVENTS_KEEP_SECONDS], client=pipe)
            else:
                pipe.publish(key, f"\n{event.type}\n{data}")
        pipe.execute()

    def _warn(self, message: str, **extra) -> None:
        now = time.monotonic()
        if now - self._last_warning > 10:  # at most one line in ten seconds: Redis away is one fact
            self._last_warning = now
            logger.warning(message, extra={"dropped_so_far": self.dropped, **extra})


_publisher = _Publisher()


def run_event_publish(*, run_id, event_type: str, data: dict, kept: bool = False) -> None:
    """Queue one event of a run for its followers; returns at once, never raises for Redis.
    `kept`: also kept in the run's stream, for followers who join or come back later."""
    _publisher.put(RunEvent(str(run_id), event_type, data, kept=kept))


def entry_id_order(entry_id: str) -> tuple[int, int]:
    """A kept entry's id (`<ms>-<seq>`) as something that sorts as Redis orders them."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class LiveEventsUnavailable(Exception):
    """Redis did not answer (within the request paths' REDIS_TIMEOUT_SECONDS): follow the database."""


def run_stream_read(*, run_id, after: str | None = None) -> list[tuple[str, str, dict]] | None:
    """What the run's stream keeps, after the entry `after` (all when None), as (id, type, data);
    None when Redis keeps nothing of it (never streamed, expired, or lost)."""
    key = run_events_key(run_id)
    try:
        client = redis_for_streams()
        entries = client.xrange(key, min=f"({after}" if after else "-", max="+")
        if not entries and not client.exists(key):
            return None
    except redis.RedisError as exc:
        raise LiveEventsUnavailable() from exc
    return [(_text(entry_id), *entry_decode(fields)) for entry_id, fields in entries]


def run_stream_holds(*, run_id, entry_id: str) -> bool | None:
    """Whether `entry_id` is an entry of the run's stream; None when Redis keeps nothing of it."""
    key = run_events_key(run_id)
    try:
        client = redis_for_streams()
        if client.xrange(key, min=entry_id, max=entry_id):
            return True
        return False if client.exists(key) else None
    except redis.RedisError as exc:
        raise LiveEventsUnavailable() from exc
