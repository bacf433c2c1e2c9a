"""Loading before serving: what a process would otherwise load on first use (the embedding model
and its first call: seconds), done before it takes its first request or message.

Workers run their kinds' warm-ups in each pool process (jobs.runner); web processes run those the
apps register here from AppConfig.ready, from gunicorn's post_worker_init (project/gunicorn_conf.py),
so no search pays a model load. Some of a web process's warm-ups run once in each of its request
threads instead (`per_thread`): what a thread holds of its own, its database connection above all,
which a request would otherwise open (bench/retrieval.py: the first search of a thread took ~15 ms
longer than the next). WORKER_WARM_UP=0 turns all of them off (the test suite's many restarts)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor
from typing import Callable, Iterable

from django.conf import settings

logger = logging.getLogger(__name__)


def request_thread_connect() -> None:
    """Each request thread's own connections, which Django keeps per thread: the database's and the
    cache's (throttling reads it on every request)."""
    from django.core.cache import cache
    from django.db import connection

    connection.ensure_connection()
    cache.get("warm-up")


def urls_resolve() -> None:
    """The URL resolver fills its tables on the first request a process resolves."""
    from django.urls import resolve

    resolve("/api/health/")


# How long each request thread's warm-up waits for the others to start beside it (so that each
# runs on a thread of its own); past it, the threads that did start warm up all the same.
THREADS_GATHER_SECONDS = 10.0

_web_warm_ups: list[Callable[[], None]] = [urls_resolve]
_web_thread_warm_ups: list[Callable[[], None]] = [request_thread_connect]


def web_warm_up_register(warm_up: Callable[[], None], *, per_thread: bool = False) -> None:
    registered = _web_thread_warm_ups if per_thread else _web_warm_ups
    if warm_up not in registered:
        registered.append(warm_up)


def web_warm_up_run(*, request_threads: Executor | None = None, thread_count: int = 1) -> None:
    """The process's warm-ups here, then the per-thread ones in each of the `thread_count` threads
    of `request_threads` (gunicorn's gthread pool), or here where requests are served from this
    thread (no pool)."""
    if not settings.WORKER_WARM_UP:
        return
    warm_ups_run(_web_warm_ups, where="web process")
    if request_threads is None:
        warm_ups_run(_web_thread_warm_ups, where="request thread")
        return
    # A pool starts a new thread only when none is idle: jobs that wait for each other at a barrier
    # are taken by `thread_count` different threads.
    gathered = threading.Barrier(thread_count)

    def warm_this_thread() -> None:
        try:
            gathered.wait(timeout=THREADS_GATHER_SECONDS)
        except threading.BrokenBarrierError:
            pass
        warm_ups_run(_web_thread_warm_ups, where="request thread")

    for job in [request_threads.submit(warm_this_thread) for _ in range(thread_count)]:
        job.result()


def warm_ups_run(warm_ups: Iterable[Callable[[], None]], *, where: str) -> None:
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
        logger.info(f"{where} warmed up", extra={"warm_up": name, "seconds": round(time.monotonic() - started, 3)})
