"""The job platform's health checks: the broker and the workers, registered with core.health from
JobsConfig.ready. Neither is required: with the broker down work is still accepted (it waits in
PostgreSQL and the watchdog publishes it), and without workers it waits in the queue; both only delay it."""

from __future__ import annotations

from django.db import DatabaseError, connection

from core.health import CheckFailed, HealthCheck, health_check_register
from jobs import broker, selectors

# A ping collects replies until the timeout unless told how many to expect: the check's latency when fewer
# answer. Two of them (none answered, asked again) stay inside the second every request is answered in.
WORKER_PING_TIMEOUT_SECONDS = 0.4


def _workers() -> list[str]:
    # Every worker is asked, and the ping returns as soon as as many have answered as said they were
    # up a moment ago (jobs.services.presence), instead of collecting replies for its whole timeout.
    # Fewer answers (one was killed and has not aged out yet), or none listed: the whole timeout.
    known = _workers_known()
    names = broker.workers_ping(timeout=WORKER_PING_TIMEOUT_SECONDS, expected=len(known) or None)
    if not names:
        # A broadcast can miss workers that are reconnecting their control channel (seen just after start-up):
        # ask once more before reporting none.
        names = broker.workers_ping(timeout=WORKER_PING_TIMEOUT_SECONDS)
    if not names:
        raise CheckFailed("no worker answered a ping")
    return names


def _workers_known() -> list[str]:
    try:
        return selectors.workers_online()
    except DatabaseError:  # the database check reports that; the broker can still be asked
        connection.close()
        return []


def _worker_clocks() -> str:
    """How far the workers' clocks are from the database's. Nothing a worker holds depends on its
    clock (leases are the database's), so a clock far off only degrades: its log times and Celery
    countdowns are off by as much."""
    from jobs.services.presence import CLOCK_OFFSET_WARN_SECONDS

    measured = [abs(offset) for offset in selectors.worker_clock_offsets().values() if offset is not None]
    worst = max(measured, default=0.0)
    if worst > CLOCK_OFFSET_WARN_SECONDS:
        raise CheckFailed(f"a worker's clock is {worst:.1f} s off the database's (more than "
                          f"{CLOCK_OFFSET_WARN_SECONDS:g} s); leases do not depend on it")
    return f"every worker's clock within {worst:.3f} s of the database's" if measured else "no worker measured yet"


def health_checks_register() -> None:
    health_check_register(HealthCheck("broker", broker.broker_ping))
    health_check_register(HealthCheck("workers", _workers, needs="broker"))
    health_check_register(HealthCheck("worker_clocks", _worker_clocks))
