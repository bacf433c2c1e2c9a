"""Kinds that exist only for the tests, loaded into the test worker with --include.

Their effects are rows in `test_effects` (primary key `key`), so a second execution of
the same effect would fail loudly instead of passing unnoticed.
"""

from __future__ import annotations

import time

from celery import shared_task
from django.db import connection

from core.errors import PermanentError, TransientError
from jobs.constants import Queue
from jobs.registry import RetryPolicy
from jobs.runner import tracked_task

EFFECTS_DDL = "CREATE TABLE IF NOT EXISTS test_effects (key text PRIMARY KEY, value text, at timestamptz DEFAULT now())"


def effect_record(key: str, value: str = "") -> None:
    with connection.cursor() as cursor:
        cursor.execute(EFFECTS_DDL)
        cursor.execute("INSERT INTO test_effects (key, value) VALUES (%s, %s)", [key, value])


def _record_timeout_cleanup(*, run, key, **args):
    effect_record(f"timeout-cleanup:{key}:{run.attempts}")


@tracked_task(kind="tests.effect", queue=Queue.JOBS, description="Sleeps with progress, then records one effect.",
              params_schema={"type": "object"}, time_limit=4, soft_time_limit=3, schedulable=False,
              retry=RetryPolicy(delays=(0.2, 0.2)), on_timeout=_record_timeout_cleanup)
def effect(ctx, key: str, seconds: float = 0.0):
    steps = max(1, int(seconds / 0.1))
    for step in range(steps):
        ctx.progress(step, steps, step="sleeping")
        time.sleep(seconds / steps)
    effect_record(key)
    return {"key": key}


def effect_exists(key: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM test_effects WHERE key = %s", [key])
        return cursor.fetchone() is not None


def _record_final_failure(*, run, **args):
    effect_record(f"final-failure:{run.id}", run.error)


@tracked_task(kind="tests.flaky", queue=Queue.JOBS, description="Fails the first `fail_times` attempts.",
              params_schema={"type": "object"}, schedulable=False,
              retry=RetryPolicy(delays=(0.3, 0.6, 0.9), retry_after_cap=2.0),
              on_final_failure=_record_final_failure)
def flaky(ctx, key: str, fail_times: int = 0, permanent: bool = False, retry_after: float | None = None,
          blocked_by: str | None = None):
    if permanent:
        raise PermanentError("bad input: will never work")
    if blocked_by and effect_exists(blocked_by):
        raise TransientError(f"{blocked_by} is still blocking")
    if ctx.attempt <= fail_times:
        raise TransientError(f"attempt {ctx.attempt} failed", retry_after=retry_after)
    effect_record(key, str(ctx.attempt))
    return {"attempt": ctx.attempt}


@tracked_task(kind="tests.progress", queue=Queue.JOBS, description="Reports progress many times a second.",
              params_schema={"type": "object"}, schedulable=False)
def progress(ctx, calls: int = 40, interval: float = 0.05, key: str = ""):
    from django.db import connection

    writes = []

    def counted(execute, sql, params, many, context):
        if "progress_current" in sql and sql.lstrip().upper().startswith("UPDATE"):
            writes.append(sql)
        return execute(sql, params, many, context)

    done = 0
    with connection.execute_wrapper(counted):  # this thread's statements: the heartbeat has its own
        for done in range(1, calls + 1):
            time.sleep(interval)
            ctx.progress(done, calls, step="counting", message=f"{done}/{calls}")
    if key:
        effect_record(key, str(done))
    return {"calls": calls, "writes": len(writes)}


@tracked_task(kind="tests.stubborn", queue=Queue.JOBS, description="Sleeps without ever reporting progress.",
              params_schema={"type": "object"}, schedulable=False, time_limit=120, soft_time_limit=110)
def stubborn(ctx, key: str, seconds: float = 60.0):
    time.sleep(seconds)
    effect_record(key)
    return {"key": key}


@tracked_task(kind="tests.committing", queue=Queue.JOBS, description="Sleeps, then commits one effect with its success.",
              params_schema={"type": "object"}, schedulable=False, retry=RetryPolicy(delays=(0.2,)))
def committing(ctx, key: str, seconds: float = 0.0):
    time.sleep(seconds)
    return ctx.commit(lambda: effect_record(key) or {"key": key})


@tracked_task(kind="tests.checkpointing", queue=Queue.JOBS, description="Keeps one effect with a checkpoint (its first "
              "attempt dawdling inside that transaction), then commits another with its success.",
              params_schema={"type": "object"}, schedulable=False, retry=RetryPolicy(delays=(0.2,)))
def checkpointing(ctx, key: str, dawdle_seconds: float = 0.0):
    def write():
        effect_record(f"{key}:checkpoint", str(ctx.attempt))
        if ctx.attempt == 1:
            time.sleep(dawdle_seconds)  # the run's row is locked meanwhile: where a pause hurts most

    if "kept" not in ctx.checkpoints:
        ctx.checkpoint({"kept": True}, write=write)
    return ctx.commit(lambda: effect_record(key, str(ctx.attempt)) or {"key": key})


@tracked_task(kind="tests.countdown", queue=Queue.JOBS, description="Counts down, reporting progress each step.",
              params_schema={"type": "object", "properties": {"steps": {"type": "integer", "minimum": 1},
                                                              "interval": {"type": "number", "minimum": 0}},
                             "additionalProperties": False})
def countdown(ctx, steps: int = 20, interval: float = 0.5):
    """A schedulable kind a user may define jobs of, slow enough to watch, cancel and retry."""
    for done in range(1, steps + 1):
        time.sleep(interval)
        ctx.progress(done, steps, step="counting down", message=f"{steps - done} left")
    ctx.log(f"Counted down {steps} steps.")
    return {"steps": steps}


@tracked_task(kind="tests.fan_out", queue=Queue.JOBS, description="Fans out into tests.child runs; records one effect "
              "when the last has ended.", params_schema={"type": "object"}, schedulable=False)
def fan_out(ctx, key: str, children: int, seconds: float = 0.0, failing: tuple = ()):
    from jobs.models import JobRun
    from jobs.selectors import run_children_counts
    from jobs.services.runs import run_enqueue

    run = JobRun.objects.get(id=ctx.id)
    if not run.children.exists():
        ctx.fan_out(lambda: len([run_enqueue(kind="tests.child", owner=run.owner, parent=run,
                                             args={"key": key, "index": index, "seconds": seconds,
                                                   "fail": index in failing})
                                 for index in range(children)]),
                    step="children", message=f"{children} children")
        if ctx.awaiting_children:
            return None
    counts = run_children_counts(parent_id=run.pk)
    # A second final step would insert the same key again, and fail loudly.
    effect_record(f"composed:{key}", ",".join(f"{status}={n}" for status, n in sorted(counts.items())))
    return {"children": counts}


@tracked_task(kind="tests.child", queue=Queue.JOBS, description="One child of tests.fan_out: sleeps, records its effect.",
              params_schema={"type": "object"}, schedulable=False, parent_share=2, retry=RetryPolicy(delays=(0.2,)))
def child(ctx, key: str, index: int, seconds: float = 0.0, fail: bool = False):
    time.sleep(seconds)
    if fail:
        raise PermanentError(f"child {index} cannot do it")
    effect_record(f"child:{key}:{index}")
    return {"index": index}


@shared_task(name="tests.plain_add", queue=Queue.JOBS, ignore_result=False)
def plain_add(x: int, y: int) -> int:
    """A plain Celery task beside the tracked kinds: its result is django-celery-results' own."""
    return x + y
