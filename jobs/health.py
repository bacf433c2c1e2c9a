"""The job platform's health checks: the broker and the workers, registered with core.health from
JobsConfig.ready. Neither is required: with the broker down work is still accepted (it waits in
PostgreSQL and the watchdog publishes it), and without workers it waits in the queue; both only delay it."""

from __future__ import annotations

from core.health import CheckFailed, HealthCheck, health_check_register
from jobs import broker

# Celery collects ping replies until the timeout, so this is also the endpoint's floor latency.
WORKER_PING_TIMEOUT_SECONDS = 0.5


def _workers() -> list[str]:
    names = broker.workers_ping(timeout=WORKER_PING_TIMEOUT_SECONDS)
    if not names:
        # A broadcast can miss workers that are reconnecting their control channel (seen just after start-up):
        # ask once more before reporting none.
        names = broker.workers_ping(timeout=WORKER_PING_TIMEOUT_SECONDS)
    if not names:
        raise CheckFailed("no worker answered a ping")
    return names


def health_checks_register() -> None:
    health_check_register(HealthCheck("broker", broker.broker_ping))
    health_check_register(HealthCheck("workers", _workers, needs="broker"))
