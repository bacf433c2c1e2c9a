"""Executing one attempt of a run inside a worker: claim, progress, outcome.

Every state change is a single conditional UPDATE, so a duplicate or redelivered
message, a cancel racing a start, or a reaper racing a slow worker, each have
exactly one winner.
"""

from __future__ import annotations

import json
import logging
import time
import traceback as traceback_module
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import Ignore, SoftTimeLimitExceeded
from django.db import connection
from django.utils import timezone

from jobs.errors import RunCancelled
from jobs.models import JobRun
from jobs.registry import JobKind

logger = logging.getLogger(__name__)

# At most about two progress writes a second per run: enough for a live bar, cheap for the database.
PROGRESS_MIN_INTERVAL = 0.5

_CLAIM_SQL = """
UPDATE jobs_jobrun
   SET status = 'STARTED', attempts = attempts + 1,
       started_at = COALESCE(started_at, %(now)s), heartbeat_at = %(now)s
 WHERE id = %(id)s AND status IN ('QUEUED', 'RETRY') AND NOT cancel_requested
RETURNING args, attempts, max_attempts, correlation_id
"""

_PROGRESS_SQL = """
UPDATE jobs_jobrun
   SET status = 'PROGRESS', progress_current = %(current)s, progress_total = %(total)s,
       progress_step = %(step)s, progress_message = %(message)s, eta_seconds = %(eta)s,
       heartbeat_at = %(now)s
 WHERE id = %(id)s AND status IN ('STARTED', 'PROGRESS')
RETURNING cancel_requested
"""


@dataclass
class RunContext:
    """What a task body gets: the run's identity and a way to report progress."""

    id: str
    attempt: int
    max_attempts: int
    correlation_id: str
    args: dict = field(default_factory=dict)
    _last_write: float = 0.0
    _rate_origin: tuple[float, int] | None = None
    _last_step: str = ""
    writes: int = field(default=0)

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    def progress(self, current: int, total: int | None = None, *, step: str = "", message: str = "") -> None:
        """Report progress; raises RunCancelled once a cancel has been requested.

        Throttled: a report within PROGRESS_MIN_INTERVAL of the last write is skipped unless it
        starts a new step or completes the total.
        """
        now = time.monotonic()
        if self._rate_origin is None or step != self._last_step:
            self._rate_origin = (now, current)
        due = (now - self._last_write >= PROGRESS_MIN_INTERVAL or step != self._last_step
               or (total is not None and current >= total))
        if not due:
            return
        eta = None
        origin_time, origin_count = self._rate_origin
        if total and current > origin_count and now > origin_time:
            rate = (current - origin_count) / (now - origin_time)
            eta = round(max(total - current, 0) / rate, 1)
        with connection.cursor() as cursor:
            cursor.execute(_PROGRESS_SQL, {
                "id": self.id, "current": current, "total": total, "step": step[:50],
                "message": message[:255], "eta": eta, "now": timezone.now(),
            })
            row = cursor.fetchone()
        self.writes += 1
        self._last_write = now
        self._last_step = step
        if row is None or row[0]:
            raise RunCancelled(self.id)



def run_claim(*, run_id: str) -> RunContext | None:
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"id": run_id, "now": timezone.now()})
        row = cursor.fetchone()
    if row is None:
        return None
    args, attempts, max_attempts, correlation_id = row
    if isinstance(args, str):  # Django leaves jsonb as text on raw cursors
        args = json.loads(args)
    return RunContext(id=run_id, attempt=attempts, max_attempts=max_attempts, correlation_id=correlation_id,
                      args=args if isinstance(args, dict) else {})


def run_execute(*, task, spec: JobKind, run_id: str) -> Any:
    """Run one attempt of `spec` for the run `run_id` (called by the Celery task)."""
    from jobs import services

    ctx = run_claim(run_id=run_id)
    if ctx is None:
        state = JobRun.objects.filter(id=run_id).values_list("status", flat=True).first()
        logger.info("run not claimable; skipped", extra={"run_id": run_id, "kind": spec.kind, "status": state})
        # Acknowledge without touching the stored outcome of the attempt that did run.
        raise Ignore()

    started = time.monotonic()
    logger.debug("run attempt started", extra={"run_id": run_id, "kind": spec.kind,
                                              "attempt": ctx.attempt, "max_attempts": ctx.max_attempts})
    try:
        result = spec.body(ctx, **ctx.args)
    except RunCancelled:
        services.run_mark_revoked(run_id=run_id, spec=spec)
        logger.info("run cancelled while running", extra={"run_id": run_id, "kind": spec.kind})
        return {"cancelled": True}
    except SoftTimeLimitExceeded as exc:
        if spec.on_timeout:
            spec.on_timeout(run_id=run_id, **ctx.args)
        error = f"timed out after {spec.soft_limit} s"
        services.run_fail_final(run_id=run_id, spec=spec, error=error,
                                traceback=traceback_module.format_exc(), exc=exc)
        raise
    except Exception as exc:
        elapsed = time.monotonic() - started
        error = f"{type(exc).__name__}: {exc}"
        if spec.retry.should_retry(exc, attempt=ctx.attempt):
            delay = spec.retry.delay_for(exc, attempt=ctx.attempt)
            services.run_mark_retry(run_id=run_id, attempt=ctx.attempt, error=error, delay=delay)
            logger.warning(
                "run attempt failed; retrying",
                extra={"run_id": run_id, "kind": spec.kind, "attempt": ctx.attempt,
                       "max_attempts": ctx.max_attempts, "delay_seconds": round(delay, 3),
                       "cause": error, "elapsed_seconds": round(elapsed, 3)},
            )
            raise task.retry(countdown=delay, exc=exc, max_retries=None)
        services.run_fail_final(run_id=run_id, spec=spec, error=error,
                                traceback=traceback_module.format_exc(), exc=exc, attempt=ctx.attempt)
        raise
    services.run_mark_success(run_id=run_id, result=result)
    logger.info("run succeeded", extra={"run_id": run_id, "kind": spec.kind, "attempt": ctx.attempt,
                                        "elapsed_seconds": round(time.monotonic() - started, 3)})
    return result
