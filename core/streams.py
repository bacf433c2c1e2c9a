"""Server-Sent Events, served by the web process's event loop beside the WSGI app.

The web process is an ASGI server (gunicorn's uvicorn worker, project/asgi.py): requests to a
stream's path are served here, asynchronously, so an open stream costs a coroutine and a few
kilobytes, not a request thread; every other request goes to Django's WSGI app in a pool of
WEB_THREADS threads (a2wsgi), as under gunicorn's gthread worker, with the same per-thread
database connections. Apps register their streams (`stream_route`) from AppConfig.ready.

A stream's life:
1. Authenticate (the API's session cookie or token) and load what it follows, in a thread: an
   object the user may not see is a 404, as in the API; a database that does not answer within
   STREAM_OPEN_SECONDS is a 503. Errors are the API's one shape.
2. Hold one of the user's STREAM_MAX_PER_USER places (429 with Retry-After beyond).
3. Subscribe to the object's Redis channel (one connection per process, `_Hub`), then let the feed
   read what happened so far (the database, and what Redis keeps), so nothing falls between.
4. Pass on each message the feed makes events of, until it ends. Keep-alive comments every
   STREAM_KEEPALIVE_SECONDS keep proxies from closing an idle stream.

A follower that cannot keep up is dropped, never buffered without bound: its queue holds
STREAM_BUFFER_EVENTS, and a write the client does not take within STREAM_SEND_TIMEOUT_SECONDS
ends it (EventSource reconnects with Last-Event-ID, and misses nothing). When Redis stops
answering, open streams say so once and follow the database instead, every second, until the
work ends.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

import redis
import redis.asyncio as aioredis
from django.conf import settings

from core.api_errors import UNAVAILABLE_RETRY_AFTER_SECONDS
from core.errors import ErrorCode

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("web.access")

# A comment line every this many seconds keeps an idle stream open through proxies and tells a
# dead client apart (its write fails).
KEEPALIVE_COMMENT = b": keep-alive\n\n"
# EventSource waits this long before it reconnects after a dropped stream.
RECONNECT_MILLISECONDS = 1000
# How often a follower without Redis reads the database instead.
DATABASE_FOLLOW_SECONDS = 1.0
# How often the hub asks Redis whether it is still there, and how long an answer may take.
HUB_PING_SECONDS = 1.0
HUB_STALL_SECONDS = 2.5
HUB_RECONNECT_SECONDS = 2.0
# Threads that open streams and read the database for them (their own connections): bounded, so
# a database that hangs holds these and never the request threads.
STREAM_DB_THREADS = 8
# How often a call waiting for a stream thread looks whether it has waited too long.
THREAD_PATIENCE_CHECK_SECONDS = 0.05
STREAMS_DROPPED_KEY = "streams:dropped"


@dataclass
class Event:
    """One Server-Sent Event: `event:` name, JSON `data`, and the `id:` a client resumes after."""

    event: str
    data: Any
    id: str | None = None

    def encode(self) -> bytes:
        lines = [f"id: {self.id}"] if self.id is not None else []
        lines += [f"event: {self.event}", "data: " + json.dumps(self.data, separators=(",", ":"), default=str)]
        return ("\n".join(lines) + "\n\n").encode()


class StreamRefused(Exception):
    """A stream answered with an error in the API's one shape, before any event."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def not_found() -> StreamRefused:
    """What an object the user may not see answers, as in the API: it does not exist for them."""
    return StreamRefused(404, ErrorCode.NOT_FOUND, "Not found.")


class Feed(Protocol):
    """What a stream follows (a run's events, a reply's text): made by a route's opener in a thread,
    which checks the user may see it. `opening` and `catch_up` run in a thread too (they read the
    database and Redis); `on_message` runs on the event loop and must not block."""

    # The Redis channels it follows (a run's, or several runs' for a page of them).
    channels: list[str]
    # The feed has given its last event: the stream closes.
    ended: bool

    def opening(self, *, last_event_id: str | None) -> list[Event]:
        """Events of what happened so far (after `last_event_id` when given); StreamRefused if that
        id is not one of this stream's."""

    def on_message(self, channel: str, payload: bytes) -> list[Event] | None:
        """Events of one message on one of its channels; None when the feed must read the database
        to go on (the work ended: `catch_up` gives the last events)."""

    def catch_up(self) -> list[Event]:
        """Events of what changed since the feed last looked, read from the database (Redis is away,
        or the work ended)."""

    def redis_lost(self) -> list[Event]:
        """What the stream says when Redis stops answering: it follows the database from now on."""


Opener = Callable[..., Feed]


@dataclass
class _Route:
    pattern: re.Pattern
    opener: Opener
    last_event_id: re.Pattern


_routes: list[_Route] = []


def stream_route(pattern: str, *, last_event_id: str) -> Callable[[Opener], Opener]:
    """Register `opener(user=, query=, **path_params) -> Feed` for paths matching `pattern` (`query`:
    the query string's parameters, each name's last value); a Last-Event-ID not matching
    `last_event_id` is refused (400) before anything is read."""

    def register(opener: Opener) -> Opener:
        _routes.append(_Route(re.compile(pattern), opener, re.compile(last_event_id)))
        return opener

    return register


def _route_for(path: str) -> tuple[_Route, dict] | None:
    for route in _routes:
        if match := route.pattern.fullmatch(path):
            return route, match.groupdict()
    return None


# --- the process's Redis subscription --------------------------------------------------------

@dataclass(eq=False)
class _Follower:
    channels: list[str]
    queue: asyncio.Queue
    overflowed: bool = False
    redis_lost: asyncio.Event = field(default_factory=asyncio.Event)


class _Hub:
    """One pub/sub connection per process, shared by every open stream: a channel is subscribed
    while someone follows it. A Redis that stops answering pings is declared lost: followers are
    told (they follow the database), and the hub reconnects in the background."""

    def __init__(self) -> None:
        self.followers: dict[str, set[_Follower]] = {}
        self.pubsub: aioredis.client.PubSub | None = None
        self.client: aioredis.Redis | None = None
        self.connected = False
        self._up = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def follow(self, channels: list[str]) -> _Follower:
        self.start()
        follower = _Follower(channels, asyncio.Queue(maxsize=settings.STREAM_BUFFER_EVENTS))
        if not self.connected:  # (re)connecting: worth a moment, as any Redis call of a request
            try:
                await asyncio.wait_for(self._up.wait(), settings.REDIS_TIMEOUT_SECONDS * 2)
            except TimeoutError:
                pass
        if not self.connected:
            follower.redis_lost.set()
            return follower
        new = [channel for channel in channels if channel not in self.followers]
        for channel in channels:
            self.followers.setdefault(channel, set()).add(follower)
        if new:
            try:
                await asyncio.wait_for(self.pubsub.subscribe(*new), settings.REDIS_TIMEOUT_SECONDS * 2)
            except Exception:
                follower.redis_lost.set()
        return follower

    async def leave(self, follower: _Follower) -> None:
        gone = []
        for channel in follower.channels:
            followers = self.followers.get(channel)
            if followers is None:
                continue
            followers.discard(follower)
            if not followers:
                del self.followers[channel]
                gone.append(channel)
        if gone and self.connected:
            try:
                await asyncio.wait_for(self.pubsub.unsubscribe(*gone), settings.REDIS_TIMEOUT_SECONDS * 2)
            except Exception:
                pass  # the next reconnect subscribes only what is followed

    async def _run(self) -> None:
        while True:
            try:
                await self._connect()
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected:
                    logger.warning("live events: Redis lost; open streams follow the database",
                                   extra={"cause": type(exc).__name__})
            self._lose()
            await asyncio.sleep(HUB_RECONNECT_SECONDS)

    async def _connect(self) -> None:
        self.client = aioredis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS * 2)
        self.pubsub = self.client.pubsub()
        # A pub/sub connection in redis-py is made by its first command.
        await asyncio.wait_for(self.pubsub.ping(), HUB_STALL_SECONDS)
        await asyncio.wait_for(self._pong(), HUB_STALL_SECONDS)
        self.connected = True
        self._up.set()
        if self.followers:
            await asyncio.wait_for(self.pubsub.subscribe(*self.followers), HUB_STALL_SECONDS)

    async def _pong(self) -> None:
        while True:
            message = await self.pubsub.get_message(timeout=HUB_STALL_SECONDS)
            if message and message.get("type") == "pong":
                return

    async def _listen(self) -> None:
        last_answer = time.monotonic()
        pinged = 0.0
        while True:
            now = time.monotonic()
            if now - pinged >= HUB_PING_SECONDS:
                await asyncio.wait_for(self.pubsub.ping(), HUB_STALL_SECONDS)
                pinged = now
            message = await self.pubsub.get_message(timeout=HUB_PING_SECONDS / 2)
            if message is None:
                if time.monotonic() - last_answer > HUB_STALL_SECONDS:
                    raise TimeoutError("Redis did not answer a ping")
                continue
            last_answer = time.monotonic()
            if message.get("type") != "message":
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            for follower in list(self.followers.get(channel, ())):
                try:
                    follower.queue.put_nowait((channel, message["data"]))
                except asyncio.QueueFull:
                    follower.overflowed = True
                    follower.redis_lost.set()  # wakes it: it ends as stalled

    def _lose(self) -> None:
        self.connected = False
        self._up.clear()
        for followers in self.followers.values():
            for follower in followers:
                follower.redis_lost.set()
        self.followers.clear()
        pubsub, client, self.pubsub, self.client = self.pubsub, self.client, None, None
        if client is not None:
            asyncio.get_running_loop().create_task(_close_quietly(pubsub, client))


async def _close_quietly(pubsub, client) -> None:
    for closing in (pubsub.aclose() if pubsub is not None else None, client.aclose()):
        if closing is None:
            continue
        try:
            await asyncio.wait_for(closing, 1.0)
        except Exception:
            pass


_hubs: dict[int, _Hub] = {}


def _hub() -> _Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(id(loop))
    if hub is None:
        hub = _hubs[id(loop)] = _Hub()
    return hub


# --- places per user ---------------------------------------------------------------------------

# Drop the user's places whose stream stopped renewing them, count, and take one if under the limit.
_TAKE_PLACE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class _Places:
    """STREAM_MAX_PER_USER open streams per user across web processes, counted in Redis (a place
    is renewed with each keep-alive and lapses when its process dies); counted in the process
    while Redis does not answer."""

    def __init__(self) -> None:
        self.local: dict[int, int] = {}
        self._script = None

    def _ttl(self) -> float:
        return settings.STREAM_KEEPALIVE_SECONDS * 3

    async def take(self, user_id: int, token: str) -> bool:
        try:
            client = _sync_redis()
            if self._script is None:
                self._script = client.register_script(_TAKE_PLACE)
            now = time.time()
            taken = await _in_thread(lambda: self._script(
                keys=[f"streams:open:{user_id}"],
                args=[now, now + self._ttl(), settings.STREAM_MAX_PER_USER, token, int(self._ttl()) + 1]))
            return bool(taken)
        except redis.RedisError:
            if self.local.get(user_id, 0) >= settings.STREAM_MAX_PER_USER:
                return False
            self.local[user_id] = self.local.get(user_id, 0) + 1
            return True

    async def renew(self, user_id: int, token: str) -> None:
        try:
            await _in_thread(lambda: _sync_redis().zadd(f"streams:open:{user_id}",
                                                        {token: time.time() + self._ttl()}, xx=True))
        except redis.RedisError:
            pass

    async def give_back(self, user_id: int, token: str) -> None:
        if self.local.get(user_id):
            self.local[user_id] -= 1
            return
        try:
            await _in_thread(lambda: _sync_redis().zrem(f"streams:open:{user_id}", token))
        except redis.RedisError:
            pass  # it lapses on its own


_places = _Places()
_sync_client: redis.Redis | None = None


def _sync_redis() -> redis.Redis:
    """A Redis client that gives up as the request paths' do (REDIS_TIMEOUT_SECONDS)."""
    global _sync_client
    if _sync_client is None:
        _sync_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=settings.REDIS_TIMEOUT_SECONDS,
                                            socket_connect_timeout=settings.REDIS_TIMEOUT_SECONDS)
    return _sync_client


def redis_for_streams() -> redis.Redis:
    """For feeds reading what Redis keeps (in their thread): the same short patience."""
    return _sync_redis()


def streams_dropped_count() -> int | None:
    """Streams dropped because their client did not read, across web processes; None if unknown."""
    try:
        value = _sync_redis().get(STREAMS_DROPPED_KEY)
    except redis.RedisError:
        return None
    return int(value or 0)


class _StreamThreads:
    """The threads that open streams and read the database for them, and whether they are getting
    anywhere: a burst of streams opening at once waits its turn, a database that hangs does not."""

    def __init__(self, size: int) -> None:
        self.executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix="stream")
        self.finished_at = time.monotonic()


_threads = _StreamThreads(STREAM_DB_THREADS)


async def _in_thread(call: Callable[[], Any], *, timeout: float | None = None) -> Any:
    """`call` in a stream thread, with Django's connection hygiene around it, as a request has.

    `timeout` is how long the call may be held by what it waits on. A call still queued behind
    others is held only while no thread finishes anything: 200 streams opening at once take their
    turns (each answered as soon as its turn comes), whereas threads all stuck on a database that
    does not answer give up `timeout` after the last one finished."""
    from django.db import close_old_connections

    started: list[float] = []

    def run():
        started.append(time.monotonic())
        close_old_connections()
        try:
            return call()
        finally:
            close_old_connections()
            _threads.finished_at = time.monotonic()

    submitted = time.monotonic()
    future = asyncio.get_running_loop().run_in_executor(_threads.executor, run)
    if not timeout:
        return await future
    while True:
        done, _ = await asyncio.wait({future}, timeout=min(timeout, THREAD_PATIENCE_CHECK_SECONDS))
        if done:
            return future.result()
        held_since = started[0] if started else max(submitted, _threads.finished_at)
        if time.monotonic() - held_since >= timeout:
            future.cancel()  # a call not yet started never will
            raise TimeoutError


# --- a stream's request ------------------------------------------------------------------------

def _user_from(scope: dict):
    """The API's users: a session (the admin's cookie) or a token (`Token`/`Bearer`)."""
    from importlib import import_module

    from django.contrib.auth import get_user
    from django.core.handlers.asgi import ASGIRequest
    from rest_framework import exceptions

    from core.auth import TokenOrBearerAuthentication

    request = ASGIRequest(scope, io.BytesIO())
    engine = import_module(settings.SESSION_ENGINE)
    request.session = engine.SessionStore(request.COOKIES.get(settings.SESSION_COOKIE_NAME))
    user = get_user(request)
    if user.is_authenticated:
        return user
    try:
        found = TokenOrBearerAuthentication().authenticate(request)
    except exceptions.Throttled as exc:
        raise StreamRefused(429, ErrorCode.THROTTLED, str(exc.detail), retry_after=int(exc.wait or 1))
    except exceptions.AuthenticationFailed as exc:
        raise StreamRefused(401, ErrorCode.NOT_AUTHENTICATED, str(exc.detail))
    if found is None:
        raise StreamRefused(401, ErrorCode.NOT_AUTHENTICATED, "Authentication credentials were not provided.")
    return found[0]


def _last_event_id(scope: dict) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"last-event-id":
            return value.decode("latin-1").strip() or None
    from urllib.parse import parse_qs

    given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("last_event_id")
    return given[-1].strip() or None if given else None


def _request_id_header() -> tuple[bytes, bytes]:
    """As RequestIdMiddleware gives every other answer: what ties the access line to the logs."""
    return b"x-request-id", uuid.uuid4().hex.encode()


async def _refuse(send, refused: StreamRefused) -> None:
    body = json.dumps({"error": {"code": refused.code, "message": refused.message, "fields": {}}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               _request_id_header()]
    if refused.retry_after is not None:
        headers.append((b"retry-after", str(refused.retry_after).encode()))
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def serve_stream(scope: dict, receive, send, route: _Route, params: dict) -> None:
    last_event_id = _last_event_id(scope)
    try:
        if scope["method"] != "GET":
            raise StreamRefused(405, ErrorCode.METHOD_NOT_ALLOWED, f"Method \"{scope['method']}\" not allowed.")
        try:
            user, feed = await _in_thread(lambda: _open(scope, route, params), timeout=settings.STREAM_OPEN_SECONDS)
        except TimeoutError:
            raise _unavailable()
        except StreamRefused:
            raise
        except Exception as exc:  # the database refused or went away: the API's 503, never a bare 500
            logger.warning("stream not opened", extra={"cause": type(exc).__name__})
            raise _unavailable()
        if last_event_id is not None and not route.last_event_id.fullmatch(last_event_id):
            raise StreamRefused(400, ErrorCode.INVALID, "Last-Event-ID is not an id this stream gives: resume with "
                                                        "the id of the last event received, or without one.")
        if last_event_id == "end":  # the client saw the end: nothing more (204 stops EventSource)
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        token = uuid.uuid4().hex
        if not await _places.take(user.pk, token):
            raise StreamRefused(429, ErrorCode.THROTTLED, f"You have {settings.STREAM_MAX_PER_USER} streams open, the "
                                                          "most one user may; close one first.",
                                retry_after=int(settings.STREAM_KEEPALIVE_SECONDS))
    except StreamRefused as refused:
        await _refuse(send, refused)
        return
    try:
        await _follow(scope, receive, send, feed, last_event_id, user_id=user.pk, token=token)
    finally:
        await _places.give_back(user.pk, token)


def _unavailable() -> StreamRefused:
    return StreamRefused(503, ErrorCode.UNAVAILABLE, "The database is not answering; try again shortly.",
                         retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS)


def _open(scope: dict, route: _Route, params: dict):
    from urllib.parse import parse_qs

    user = _user_from(scope)
    query = {name: values[-1] for name, values in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
    return user, route.opener(user=user, query=query, **params)


async def _follow(scope, receive, send, feed: Feed, last_event_id: str | None, *, user_id: int, token: str) -> None:
    hub = _hub()
    follower = await hub.follow(feed.channels)
    try:
        try:
            events = await _in_thread(lambda: feed.opening(last_event_id=last_event_id),
                                      timeout=settings.STREAM_OPEN_SECONDS)
        except StreamRefused as refused:
            await _refuse(send, refused)
            return
        except Exception as exc:
            logger.warning("stream not opened", extra={"cause": type(exc).__name__})
            await _refuse(send, _unavailable())
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache, no-transform"),
            # nginx buffers answers unless told not to; a stream must leave at once.
            (b"x-accel-buffering", b"no"), _request_id_header(),
        ]})
        stream = _Writer(send)
        await stream.write(f"retry: {RECONNECT_MILLISECONDS}\n\n".encode())
        await stream.events(events)
        disconnected = asyncio.get_running_loop().create_task(_disconnect(receive))
        try:
            await _pass_on(feed, follower, stream, disconnected, user_id=user_id, token=token)
        except _Stalled:
            await _in_thread(_count_drop)
            logger.info("stream dropped: its client does not read", extra={"channels": feed.channels[:5]})
        finally:
            disconnected.cancel()
        if not stream.closed:
            await stream.close()
    finally:
        await hub.leave(follower)


class _Stalled(Exception):
    """The client stopped reading: its buffer is full or a write did not leave in time."""


class _Gone(Exception):
    """The client went away."""


class _Writer:
    def __init__(self, send) -> None:
        self.send = send
        self.closed = False

    async def write(self, body: bytes) -> None:
        try:
            await asyncio.wait_for(self.send({"type": "http.response.body", "body": body, "more_body": True}),
                                   settings.STREAM_SEND_TIMEOUT_SECONDS)
        except TimeoutError:
            raise _Stalled()
        except OSError:
            raise _Gone()

    async def events(self, events: list[Event]) -> None:
        if events:
            await self.write(b"".join(event.encode() for event in events))

    async def close(self) -> None:
        self.closed = True
        try:
            await asyncio.wait_for(self.send({"type": "http.response.body", "body": b""}),
                                   settings.STREAM_SEND_TIMEOUT_SECONDS)
        except (TimeoutError, OSError):
            pass


async def _disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _pass_on(feed: Feed, follower: _Follower, stream: _Writer, disconnected: asyncio.Task, *,
                   user_id: int, token: str) -> None:
    keepalive = settings.STREAM_KEEPALIVE_SECONDS
    next_keepalive = time.monotonic() + keepalive
    following_database = False
    while not feed.ended:
        if disconnected.done():
            return
        if follower.overflowed:
            raise _Stalled()
        if follower.redis_lost.is_set() and not following_database:
            following_database = True
            await stream.events(feed.redis_lost())
        wait = max(0.0, next_keepalive - time.monotonic())
        if following_database:
            wait = min(wait, DATABASE_FOLLOW_SECONDS)
            await asyncio.wait([disconnected], timeout=wait)
            events = await _database_events(feed)
        else:
            message = await _next(follower, disconnected, wait)
            if message is None:
                events = []
            else:
                events = feed.on_message(*message)
                if events is None:
                    events = await _database_events(feed)
        if disconnected.done():
            return
        if events:
            await stream.events(events)
        if time.monotonic() >= next_keepalive:
            await stream.write(KEEPALIVE_COMMENT)
            await _places.renew(user_id, token)
            next_keepalive = time.monotonic() + keepalive


async def _database_events(feed: Feed) -> list[Event]:
    try:
        return await _in_thread(feed.catch_up, timeout=settings.STREAM_OPEN_SECONDS * 2)
    except Exception as exc:  # the database away too: keep the stream, look again next time
        logger.info("stream could not read the database", extra={"cause": type(exc).__name__})
        return []


async def _next(follower: _Follower, disconnected: asyncio.Task, wait: float):
    """The next message for this follower, or None after `wait` seconds, a disconnect or Redis lost."""
    if not follower.queue.empty():
        return follower.queue.get_nowait()
    getting = asyncio.ensure_future(follower.queue.get())
    lost = asyncio.ensure_future(follower.redis_lost.wait())
    try:
        await asyncio.wait([getting, lost, disconnected], timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
        if not getting.done():
            getting.cancel()
    if getting.done() and not getting.cancelled():
        return getting.result()
    return None


def _count_drop() -> None:
    try:
        _sync_redis().incr(STREAMS_DROPPED_KEY)
    except redis.RedisError:
        pass


# --- the ASGI application ---------------------------------------------------------------------

def streams_beside(wsgi: Callable[..., Awaitable[None]]):
    """The web process's ASGI app: streams here, everything else to `wsgi` (Django's WSGI app in
    a2wsgi's thread pool). Writes the access line of each request, with its X-Request-ID."""

    async def application(scope, receive, send):
        if scope["type"] != "http":
            return await wsgi(scope, receive, send)
        started = time.monotonic()
        answered: dict[str, Any] = {"status": 0, "request_id": "-", "bytes": 0}

        async def send_noting(message):
            if message["type"] == "http.response.start":
                answered["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        answered["request_id"] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                answered["bytes"] += len(message.get("body", b""))
            await send(message)

        found = _route_for(scope["path"])
        try:
            if found is None:
                await wsgi(scope, receive, send_noting)
            else:
                await serve_stream(scope, receive, send_noting, *found)
        finally:
            client = (scope.get("client") or ("-",))[0]
            query = f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
            access_logger.info(f'{client} "{scope["method"]} {scope["path"]}{query} HTTP/{scope.get("http_version")}" '
                               f'{answered["status"]} {answered["bytes"]} {round((time.monotonic() - started) * 1000)}ms '
                               f'request_id={answered["request_id"]}')

    return application
