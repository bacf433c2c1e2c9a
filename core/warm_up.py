"""Loading before serving: what a process would otherwise load on first use (the embedding model
and its first call: seconds), done before it takes its first request or message.

Workers run their kinds' warm-ups in each pool process (jobs.runner); web processes run those the
apps register here from AppConfig.ready, from gunicorn's post_worker_init (project/gunicorn_conf.py),
so no search pays a model load. WORKER_WARM_UP=0 turns both off (the test suite's many restarts)."""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable

from django.conf import settings

logger = logging.getLogger(__name__)

_web_warm_ups: list[Callable[[], None]] = []


def web_warm_up_register(warm_up: Callable[[], None]) -> None:
    if warm_up not in _web_warm_ups:
        _web_warm_ups.append(warm_up)


def web_warm_up_run() -> None:
    if settings.WORKER_WARM_UP:
        warm_ups_run(_web_warm_ups, process="web")


def warm_ups_run(warm_ups: Iterable[Callable[[], None]], *, process: str) -> None:
    """Each warm-up once, timed; one that fails is logged and the process starts all the same (a
    request or run that needs it will say what is wrong)."""
    for warm_up in warm_ups:
        name = getattr(warm_up, "__name__", "warm_up")
        started = time.monotonic()
        try:
            warm_up()
        except Exception:
            logger.exception("warm-up failed", extra={"warm_up": name})
            continue
        logger.info(f"{process} process warmed up", extra={"warm_up": name,
                                                          "seconds": round(time.monotonic() - started, 3)})
