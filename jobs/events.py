"""Celery's task events only while someone reads them.

Task events (received, started, succeeded…) cost a worker's main process a broker publish each,
nearly half its time on short tasks, and nothing of ours reads them: they are off
(CELERY_WORKER_SEND_TASK_EVENTS). Flower switches them on in every worker by broadcasting
`enable_events` every 5 s while it runs; `celery control enable_events` does so once. Celery never
switches them off again, so after Flower stopped, every worker went on paying for events nobody
received.

So each worker treats `enable_events` as a lease: task events stay on while it was asked within
TASK_EVENTS_IDLE_SECONDS, or while a reader of task events is listening (on Redis, where that can be
asked: `celery events`, which never asks for events, is such a reader). When neither holds, the
worker switches them off itself, and says so in its log.
"""

from __future__ import annotations

import logging
import time

from celery import bootsteps
from celery.worker import control
from django.conf import settings

from jobs.broker import task_event_readers

logger = logging.getLogger(__name__)

# How often each worker looks, while its task events are on.
CHECK_INTERVAL_SECONDS = 10.0

_celery_enable_events = control.Panel.data["enable_events"]


@control.control_command(name="enable_events")
def enable_events(state):
    """Celery's own command, remembering when it was last given (the lease's start)."""
    state.consumer.task_events_asked_at = time.monotonic()
    return _celery_enable_events(state)


def task_events_on(consumer) -> bool:
    dispatcher = consumer.event_dispatcher
    return dispatcher is not None and dispatcher.enabled and (not dispatcher.groups or "task" in dispatcher.groups)


class TaskEventsLease(bootsteps.StartStopStep):
    """The worker's own check, on its timer: task events off once nobody asks for them or reads them."""

    requires = ("celery.worker.consumer.events:Events",)

    def __init__(self, parent, **kwargs):
        super().__init__(parent, **kwargs)
        self.timer_entry = None

    def start(self, consumer):
        consumer.task_events_asked_at = time.monotonic()
        if settings.CELERY_WORKER_SEND_TASK_EVENTS:
            return  # kept on by configuration
        interval = min(CHECK_INTERVAL_SECONDS, settings.TASK_EVENTS_IDLE_SECONDS / 2)
        self.timer_entry = consumer.timer.call_repeatedly(interval, self.check, (consumer,))

    def stop(self, consumer):
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    def check(self, consumer):
        if not task_events_on(consumer):
            return
        idle = time.monotonic() - getattr(consumer, "task_events_asked_at", 0.0)
        if idle < settings.TASK_EVENTS_IDLE_SECONDS:
            return
        try:
            readers = task_event_readers()
        except Exception:  # the broker away: ask again at the next check, events as they are
            logger.warning("could not ask the broker for readers of task events", exc_info=True)
            return
        if readers:
            return
        consumer.event_dispatcher.groups.discard("task")
        logger.info("task events switched off: nobody asked for them for %.0f s and nobody reads them", idle,
                    extra={"idle_seconds": round(idle, 1)})
