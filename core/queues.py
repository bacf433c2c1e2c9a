"""The queues work is published to, named once. Standard library only: settings (the default
queue) and the process supervisor (processes.workers, which starts workers for them all) read
them without setting Django up; each kind declares one (jobs.public.tracked_task)."""

import enum


class Queue(enum.StrEnum):
    """Every queue work is published to, named once: each kind declares one of these, and the
    process supervisor starts workers that consume them all (processes.workers.WORKER_GROUPS)."""

    # Small platform tasks a user may start (ping, test_celery).
    JOBS = "jobs"
    CHAT = "chat"
    DOCUMENTS = "documents"
    RESEARCH = "research"
    # Recovery and housekeeping (the watchdog, cancel enforcement, job triggers, cleanups) run on a
    # queue of their own, so they never wait behind user work.
    MAINTENANCE = "maintenance"
