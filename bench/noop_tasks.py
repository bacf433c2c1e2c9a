"""The tasks the overhead benchmarks compare."""

import time

from celery import shared_task

from jobs.registry import RetryPolicy
from jobs.runner import tracked_task

_redis = None


def counter_client():
    global _redis
    if _redis is None:
        import redis
        from django.conf import settings

        _redis = redis.Redis.from_url(settings.REDIS_URL)
    return _redis


def _mark_done(mark: str) -> None:
    """Count one finished execution of a task under `mark` ("hash key:field"): bench/worker_kill.py
    tells from these which tasks finished once, twice or never."""
    if mark:
        key, field = mark.rsplit(":", 1)
        counter_client().hincrby(key, field)


@shared_task(name="bench.bare_noop", ignore_result=True)
def bare_noop(counter: str, work_ms: float = 0, mark: str = ""):
    if work_ms:
        time.sleep(work_ms / 1000)
    _mark_done(mark)
    # The counter is how the benchmark sees completion without a result backend.
    counter_client().incr(counter)


@shared_task(name="bench.results_noop", ignore_result=False, track_started=True)
def results_noop(work_ms: float = 0, mark: str = ""):
    """Celery as most projects run it: django-celery-results stores STARTED and SUCCESS (extended)."""
    if work_ms:
        time.sleep(work_ms / 1000)
    _mark_done(mark)
    return None


# Retries as the product's own kinds have them: a run whose worker was killed is taken over and run
# again (bench/worker_kill.py), where one without would be failed for good ("worker lost").
@tracked_task(kind="bench.tracked_noop", queue="jobs", description="Does nothing (benchmark).", schedulable=False,
              params_schema={"type": "object"}, retry=RetryPolicy(retries=2))
def tracked_noop(ctx, work_ms: float = 0, mark: str = ""):
    if work_ms:
        time.sleep(work_ms / 1000)
    _mark_done(mark)
    return None


_http = None


@shared_task(name="bench.bare_completion", ignore_result=True)
def bare_completion(url: str, key: str):
    """The same HTTP call a chat reply makes (on a kept-alive client, as the reply's), with none of the
    tracking, retrieval or saving."""
    global _http
    import httpx

    _http = _http or httpx.Client(timeout=30)
    _http.post(f"{url}/v1/chat/completions", json={"model": "default",
                                                   "messages": [{"role": "user", "content": "hi"}]})
    counter_client().set(key, 1, ex=60)


@tracked_task(kind="bench.tracked_step", queue="jobs", description="Keeps one step, then nothing (benchmark).",
              schedulable=False, params_schema={"type": "object"})
def tracked_step(ctx):
    return ctx.step("answer", lambda: {"content": "kept"})


def q2_noop(work_ms: float = 0, mark: str = ""):
    """The same work as a django-q2 task (a plain function; django-q2 saves its result itself)."""
    if work_ms:
        time.sleep(work_ms / 1000)
    _mark_done(mark)
