"""One beat at a time: a Redis lock held by the scheduler that is allowed to schedule.

A second beat process neither schedules nor crashes: it waits, says so in its log, and
takes over once the first one's lock expires.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler

from jobs.broker import LeaderLock, LockUnavailable

logger = logging.getLogger(__name__)

LOCK_KEY = "beat:leader"
# While waiting for the lock, look again this often (seconds).
STANDBY_POLL_SECONDS = 5.0
# How often the leader looks for runs that fell due: a run is published at most this late.
DUE_POLL_SECONDS = 1.0


class LockedDatabaseScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self._lock = LeaderLock(key=LOCK_KEY, token=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
                                ttl_seconds=settings.BEAT_LOCK_TTL_SECONDS)
        self._leader = False
        self._said_waiting = False
        super().__init__(*args, **kwargs)

    def install_default_entries(self, data):
        # Celery's own celery.backend_cleanup, added whenever result_expires is set: task results
        # expire by our cleanup_results job (CELERY_RESULT_EXPIRES, in batches), in one place.
        return None

    def _hold_lock(self) -> bool:
        try:
            held = self._lock.acquire_or_extend()
        except LockUnavailable as exc:
            logger.warning("beat lock check failed; not scheduling", extra={"cause": str(exc)})
            held = None  # nobody can tell who holds it: not said to be another beat
        if held:
            if not self._leader:
                logger.info("beat lock acquired; this beat schedules", extra={"beat": self._lock.token})
            self._leader, self._said_waiting = True, False
            return True
        if self._leader:
            logger.warning("beat lock lost; standing by", extra={"beat": self._lock.token})
        self._leader = False
        if held is False and not self._said_waiting:
            logger.warning("another beat holds the lock; waiting", extra={"holder": self._lock.holder(),
                                                                          "beat": self._lock.token})
            self._said_waiting = True
        return False

    def tick(self, *args, **kwargs):
        if not self._hold_lock():
            return STANDBY_POLL_SECONDS
        interval = super().tick(*args, **kwargs)
        self._publish_due()
        # Wake in time to renew the lock well before it expires, and to publish what falls due.
        return min(interval, settings.BEAT_LOCK_TTL_SECONDS / 3, DUE_POLL_SECONDS)

    def _publish_due(self) -> None:
        """Runs put off by `countdown` / `eta` are published here when due, not parked in the broker
        (where Redis would deliver them again after its visibility timeout, early, and a flush or
        restart would lose them)."""
        from jobs.services.runs import runs_publish_due

        try:
            runs_publish_due()
        except DatabaseError as exc:
            logger.warning("due runs not published; the database is unreachable", extra={"cause": str(exc)})
            close_old_connections()

    def close(self):
        if self._leader:
            self._lock.release()
        super().close()


def next_run_at(task, *, now: datetime) -> datetime | None:
    """When beat will next send a periodic task, as its scheduler reckons it (from the last run, or
    from now for one not run yet); None when it will not (disabled, or a one-off already sent)."""
    if not task.enabled or (task.one_off and task.total_run_count):
        return None
    try:
        schedule = task.schedule
        remaining = schedule.remaining_estimate(task.last_run_at or now)
    except (AttributeError, TypeError, ValueError):
        return None  # a row whose schedule beat cannot read either
    return now + max(remaining, timedelta(0))
