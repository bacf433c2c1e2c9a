"""Where a run's message stands in line: the two priorities runs are published with, and the
broker keys a queue of runs is kept under.

Resumed work (a run taken over from a lost worker, handed back after a database outage, or whose
message vanished) was accepted before anything now waiting: it is published ahead of fresh work
on its own queue, so it restarts as soon as a worker of that queue is free instead of waiting
behind the whole queue a second time.

Broker priorities, not a resume queue of its own: a worker reading several queues rotates between
them (kombu's round-robin cycle), so "read this queue first" is not something a worker can be told,
whereas priorities are strict on both brokers. On Redis, kombu keeps one list per priority step
(settings' CELERY_BROKER_TRANSPORT_OPTIONS) and asks for all of a worker's lists in one BRPOP,
step 0 first. On RabbitMQ higher numbers go first.
"""

from __future__ import annotations

from django.conf import settings


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
    sep = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("sep", "\x06\x16")
    return [queue if step == 0 else f"{queue}{sep}{step}" for step in (_redis_steps() or [0])]

