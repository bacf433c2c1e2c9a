"""One circuit breaker per server (host and port) in each process: Redis as the cache, the broker,
the beat lock.

Every client of those servers gives up within a short timeout (settings' REDIS_TIMEOUT_SECONDS).
A failed call trips the server's breaker; for BREAKER_SECONDS after that, every path in this
process that would call that server takes its fallback at once (a run waits in PostgreSQL for the
watchdog, the cache answers from this process's memory) instead of paying the timeout again. The
first call after the window is a real try: it closes the breaker or trips it again.

With `make run`'s one Redis as cache and broker, both share one breaker: a request that found the
cache dead does not try the broker next.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlparse

from django.conf import settings

logger = logging.getLogger(__name__)


class Breaker:
    def __init__(self, server: str) -> None:
        self.server = server
        self.open_until = 0.0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def seconds_left(self) -> float:
        return max(0.0, self.open_until - time.monotonic())

    def trip(self, *, cause: BaseException) -> None:
        if not self.open_until:
            # Once per outage, not once per request: the log says when it began and when it ended.
            logger.warning("server unreachable; skipped for the breaker's window",
                           extra={"server": self.server, "cause": type(cause).__name__,
                                  "window_seconds": settings.BREAKER_SECONDS})
        self.open_until = time.monotonic() + settings.BREAKER_SECONDS

    def reset(self) -> None:
        if self.open_until:
            logger.info("server answers again", extra={"server": self.server})
        self.open_until = 0.0


_breakers: dict[str, Breaker] = {}


def breaker_for(url: str) -> Breaker:
    """The breaker of the server `url` names: one per host and port, whatever the database number,
    user or scheme, so every client of one server shares it."""
    parsed = urlparse(url)
    server = f"{parsed.hostname}:{parsed.port}" if parsed.hostname else parsed.path
    return _breakers.setdefault(server, Breaker(server))
