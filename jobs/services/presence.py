"""Which workers are up, from their own heartbeats.

A worker's main process records itself (node name, queues) on each of Celery's event heartbeats
(every 2 s; sent whether task events are on or off) and forgets itself when it stops. The API's
stats, /metrics and the admin read that table, so none of them waits on a broadcast ping, which
collects replies for its whole timeout: `/api/runs/stats/` answered in no less than a second. A
worker killed outright ages out after WORKER_PRESENCE_SECONDS.

The health check still pings: it is the one place that asks whether workers answer through the
broker right now. It expects as many answers as workers are listed here, and returns once they have come.

Each worker also measures how far its clock is from the database's, about once a minute, and says so
in its log when that is more than CLOCK_OFFSET_WARN_SECONDS: nothing it holds depends on its clock
(leases are judged by the database's), but its log lines' times, Celery's countdowns and ETAs are its own.
"""

from __future__ import annotations

import logging
import time

from celery import signals
from django.db import DatabaseError, connection
from django.db.models.functions import Now

from core.clock import clock_offset_seconds
from jobs import broker
from jobs.models import WorkerPresence

logger = logging.getLogger(__name__)

# A clock further than this from the database's is said in the worker's log (and shown in health).
CLOCK_OFFSET_WARN_SECONDS = 2.0
# How often a worker measures its clock's offset (one small query); a clock does not run off faster.
CLOCK_MEASURE_EVERY_SECONDS = 60.0

# Set once this worker stops: the heartbeat Celery sends as it goes offline must not record it again.
_stopping = False
_measured: tuple[float, float] | None = None  # (when, offset)


def worker_presence_record(*, name: str, queues: list[str]) -> None:
    WorkerPresence.objects.bulk_create(
        [WorkerPresence(name=name, queues=queues, seen_at=Now(), clock_offset_seconds=_clock_offset(name=name))],
        update_conflicts=True, unique_fields=["name"], update_fields=["queues", "seen_at", "clock_offset_seconds"])


def _clock_offset(*, name: str) -> float:
    global _measured
    if _measured is None or time.monotonic() - _measured[0] >= CLOCK_MEASURE_EVERY_SECONDS:
        offset = clock_offset_seconds()
        if abs(offset) > CLOCK_OFFSET_WARN_SECONDS:
            logger.warning("this worker's clock is off the database's; leases are judged by the database's, but "
                           "this worker's log times and Celery countdowns are not",
                           extra={"worker": name, "clock_offset_seconds": offset})
        _measured = (time.monotonic(), offset)
    return _measured[1]


def worker_presence_forget(*, name: str) -> None:
    WorkerPresence.objects.filter(name=name).delete()


@signals.heartbeat_sent.connect
def _heartbeat_sent(sender=None, **kwargs):
    if _stopping:
        return
    try:
        worker_presence_record(name=sender.eventer.hostname, queues=sorted(broker.queues_consumed()))
    except DatabaseError as exc:
        # Missed heartbeats only age the row; the next one, on a fresh connection, records it again.
        connection.close()
        logger.debug("worker presence not recorded", extra={"cause": type(exc).__name__})


@signals.worker_shutdown.connect
def _worker_shutdown(sender=None, **kwargs):
    global _stopping
    _stopping = True
    try:
        worker_presence_forget(name=sender.hostname)
    except DatabaseError:
        connection.close()  # it ages out instead
