"""Which workers are up, from their own heartbeats.

A worker's main process records itself (node name, queues) on each of Celery's event heartbeats
(every 2 s; sent whether task events are on or off) and forgets itself when it stops. The API's
stats, /metrics and the admin read that table, so none of them waits on a broadcast ping, which
collects replies for its whole timeout: `/api/runs/stats/` answered in no less than a second. A
worker killed outright ages out after WORKER_PRESENCE_SECONDS.

The health check still pings: it is the one place that asks whether workers answer through the
broker right now. It expects as many answers as workers are listed here, and returns once they have come.
"""

from __future__ import annotations

import logging

from celery import signals
from django.db import DatabaseError, connection
from django.utils import timezone

from jobs import broker
from jobs.models import WorkerPresence

logger = logging.getLogger(__name__)

# Set once this worker stops: the heartbeat Celery sends as it goes offline must not record it again.
_stopping = False


def worker_presence_record(*, name: str, queues: list[str]) -> None:
    WorkerPresence.objects.bulk_create([WorkerPresence(name=name, queues=queues, seen_at=timezone.now())],
                                       update_conflicts=True, unique_fields=["name"],
                                       update_fields=["queues", "seen_at"])


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
