"""One beat at a time: a Redis lock held by the scheduler that is allowed to schedule.

A second beat process neither schedules nor crashes: it waits, says so in its log, and
takes over once the first one's lock expires.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid

import redis
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)

LOCK_KEY = "beat:leader"
# While waiting for the lock, look again this often (seconds).
STANDBY_POLL_SECONDS = 5.0

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


class LockedDatabaseScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self._lock_token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        self._leader = False
        self._said_waiting = False
        super().__init__(*args, **kwargs)

    def _hold_lock(self) -> bool:
        ttl_ms = settings.BEAT_LOCK_TTL_SECONDS * 1000
        try:
            if self._leader and self._redis.eval(_EXTEND, 1, LOCK_KEY, self._lock_token, ttl_ms):
                return True
            if self._redis.set(LOCK_KEY, self._lock_token, nx=True, px=ttl_ms):
                logger.info("beat lock acquired; this beat schedules", extra={"beat": self._lock_token})
                self._leader, self._said_waiting = True, False
                return True
        except redis.RedisError as exc:
            logger.warning("beat lock check failed; not scheduling", extra={"cause": str(exc)})
        if self._leader:
            logger.warning("beat lock lost; standing by", extra={"beat": self._lock_token})
        self._leader = False
        return False

    def tick(self, *args, **kwargs):
        if not self._hold_lock():
            if not self._said_waiting:
                holder = self._redis_holder()
                logger.warning("another beat holds the lock; waiting", extra={"holder": holder,
                                                                              "beat": self._lock_token})
                self._said_waiting = True
            return STANDBY_POLL_SECONDS
        interval = super().tick(*args, **kwargs)
        # Wake in time to renew the lock well before it expires.
        return min(interval, settings.BEAT_LOCK_TTL_SECONDS / 3)

    def _redis_holder(self) -> str | None:
        try:
            value = self._redis.get(LOCK_KEY)
        except redis.RedisError:
            return None
        return value.decode() if value else None

    def close(self):
        if self._leader:
            try:
                self._redis.eval(_RELEASE, 1, LOCK_KEY, self._lock_token)
            except redis.RedisError:
                pass
        super().close()
