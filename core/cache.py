"""The Django cache: Redis, read as JSON only, and degrading instead of failing.

Django's default pickles values, so anyone who can write a key in Redis could run code in every
process that reads it. JSON reads data, nothing else; a value that is not JSON is a miss.

Nothing cached here is a record: throttle histories, the LLM health memo. So when Redis is down or
frozen, the cache answers from this process's memory (limits stay roughly in force, per process)
rather than failing the request; the server's breaker (core.breaker) keeps every later call from
waiting on it again until its window has passed.
"""

from __future__ import annotations

import json
import logging

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from redis import ConnectionError as RedisConnectionError
from redis import RedisError
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.breaker import breaker_for

logger = logging.getLogger(__name__)

# What the serializer returns for a stored value it cannot read: the cache answers it as a miss.
UNREADABLE = object()
# Keys the in-memory stand-in keeps per process during an outage (throttle histories are one per caller).
FALLBACK_MAX_ENTRIES = 10_000


class JsonSerializer:
    def dumps(self, obj):
        # Plain integers stay integers so that incr() and decr() work in Redis itself.
        if type(obj) is int:
            return obj
        return json.dumps(obj, separators=(",", ":")).encode()

    def loads(self, data):
        try:
            return int(data)
        except ValueError:
            pass
        try:
            return json.loads(data)
        except ValueError:
            logger.warning("cache value is not JSON; treated as missing")
            return UNREADABLE


class CacheUnavailable(Exception):
    """Redis, as the cache, failed a moment ago."""


class FailSoftRedisCache(RedisCache):
    """Django's Redis cache, where an unreachable server is a local cache and an unreadable value
    a miss."""

    def __init__(self, server, params):
        super().__init__(server, params)
        # A pooled connection that Redis closed while it was away fails its first command after
        # Redis is back: reconnect once at once, rather than count a live server as down. A
        # timeout is not retried (a frozen server would cost the request the timeout twice).
        self._options = {"retry": Retry(NoBackoff(), 1), "retry_on_error": [RedisConnectionError], **self._options}
        self.breaker = breaker_for(self._servers[0])
        self._local = LocMemCache(f"fallback:{server}", {"TIMEOUT": params.get("TIMEOUT", 300),
                                                         "OPTIONS": {"MAX_ENTRIES": FALLBACK_MAX_ENTRIES}})

    def _call(self, method: str, *args, **kwargs):
        if not self.breaker.is_open:
            try:
                result = getattr(super(), method)(*args, **kwargs)
            except RedisError as exc:
                self.breaker.trip(cause=exc)
            else:
                self.breaker.reset()
                return result
        return getattr(self._local, method)(*args, **kwargs)

    def get(self, key, default=None, version=None):
        value = self._call("get", key, default, version=version)
        return default if value is UNREADABLE else value

    def get_many(self, keys, version=None):
        return {key: value for key, value in self._call("get_many", keys, version=version).items()
                if value is not UNREADABLE}

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("add", key, value, timeout, version=version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set", key, value, timeout, version=version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("touch", key, timeout, version=version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call("set_many", data, timeout, version=version)

    def delete(self, key, version=None):
        return self._call("delete", key, version=version)

    def delete_many(self, keys, version=None):
        return self._call("delete_many", keys, version=version)

    def has_key(self, key, version=None):
        return self._call("has_key", key, version=version)

    def incr(self, key, delta=1, version=None):
        return self._call("incr", key, delta, version=version)

    def clear(self):
        return self._call("clear")

    def ping(self) -> str:
        """'reachable', or raises (CacheUnavailable at once while the breaker is open)."""
        if self.breaker.is_open:
            raise CacheUnavailable(f"unreachable a moment ago; asked again in {self.breaker.seconds_left():.1f} s")
        try:
            self._cache.get_client(write=False).ping()
        except RedisError as exc:
            self.breaker.trip(cause=exc)
            raise
        self.breaker.reset()
        return "reachable"
