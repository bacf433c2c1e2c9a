"""Executing runs inside a worker: `tracked_task`, the worker's run context (the implementation of
jobs.context.RunContext), and one attempt's path from claim to outcome. Every status change goes
through `jobs.lifecycle`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback as traceback_module
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

from celery import Task, signals
from celery.exceptions import Ignore, Retry, SoftTimeLimitExceeded
from celery.worker.request import Request
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection, transaction

from core.warm_up import warm_ups_run
from jobs import lifecycle
from jobs.broker import celery_app, publish_priority, queues_consumed
from jobs.calls import PREVIOUS_RESULT, RUN_OWNER_HEADER, celery_call_options
from jobs.errors import LeaseLost, RunCancelled
from jobs.live import run_event_publish
from jobs.models import JobRun, LogLevel, RunStatus, TriggeredBy
from jobs.registry import JobKind, kind_find, kind_register, kinds_all

logger = logging.getLogger(__name__)

T = TypeVar("T")

# At most about two progress writes a second per run: enough for a live bar, cheap for the database.
PROGRESS_MIN_INTERVAL = 0.5
# A body that logs in a loop cannot fill the table: lines past these bounds are dropped.
RUN_LOG_MAX_ENTRIES = 200
RUN_LOG_MESSAGE_CHARS = 2000
# WorkerRunContext.outcome of an attempt that handed its run over to child runs.
AWAITING_CHILDREN = "AWAITING_CHILDREN"
# Errors that say the database is unreachable rather than that the work is wrong.
DATABASE_DOWN = (OperationalError, InterfaceError)
# Redelivery of a message whose claim met a database outage: 1, 2, 4, 8, then every 10 s.
DATABASE_RETRY_MAX_SECONDS = 10.0
# How often a worker waiting out a database outage mid-attempt tries to reconnect.
DATABASE_POLL_SECONDS = 1.0
# How often a body inside ctx.watching_cancel looks for a cancel: a stopped reply must end within a
# second, and one primary-key read four times a second per streaming reply costs the database nothing.
CANCEL_WATCH_SECONDS = 0.25


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- the heartbeat --------------------------------------------------------------------------

class _Heartbeat:
    """One daemon thread per worker process refreshes `heartbeat_at` of the run it executes, so a
    body that never reports progress (waiting on an LLM) still shows it is alive, and a process
    that died stops heartbeating within RUN_HEARTBEAT_SECONDS. It beats under the attempt's lease:
    once the run was taken over, no beat lands (and the body finds out at its next write)."""

    def __init__(self) -> None:
        self.held: tuple[str, int] | None = None
        self._pid: int | None = None

    def hold(self, run_id: str, lease: int) -> None:
        if self._pid != os.getpid():  # first use in this (possibly forked) process
            self._pid = os.getpid()
            threading.Thread(target=self._loop, daemon=True, name="run-heartbeat").start()
        self.held = (run_id, lease)

    def drop(self) -> None:
        self.held = None

    def _loop(self) -> None:
        while True:
            time.sleep(settings.RUN_HEARTBEAT_SECONDS)
            held = self.held
            if held is None:
                continue
            run_id, lease = held
            try:
                if not lifecycle.run_heartbeat(run_id=run_id, lease=lease) and self.held == held:
                    logger.warning("heartbeat refused: the run is no longer held by this attempt",
                                   extra={"run_id": run_id, "lease": lease})
                    self.held = None
            except Exception as exc:  # the database may be away; the next beat tries again
                logger.warning("heartbeat not written", extra={"run_id": run_id, "cause": type(exc).__name__})
                close_old_connections()


_heartbeat = _Heartbeat()


# --- what a body gets ---------------------------------------------------------------------

@dataclass
class WorkerRunContext:
    """jobs.context.RunContext in a worker: every write holds only while the attempt's lease does."""

    id: str
    attempt: int
    max_attempts: int
    correlation_id: str
    lease: int = 0
    args: dict = field(default_factory=dict)
    checkpoints: dict = field(default_factory=dict)
    worker: str = ""
    outcome: str | None = None
    started: float = field(default_factory=time.monotonic)
    # Step results whose checkpoint met a database outage, written once it is back (see _database_outage).
    unsaved: dict = field(default_factory=dict)
    _last_write: float = 0.0
    _rate_origin: tuple[float, int] | None = None
    _last_step: str = ""
    _log_lines: int = 0

    @classmethod
    def from_claim(cls, *, run_id: str, claim: lifecycle.Claim, worker: str = "") -> "WorkerRunContext":
        return cls(id=run_id, attempt=claim.attempt, max_attempts=claim.max_attempts,
                   correlation_id=claim.correlation_id, lease=claim.lease, args=claim.args,
                   checkpoints=dict(claim.checkpoints), worker=worker)

    def progress(self, current: int, total: int | None = None, *, step: str = "", message: str = "") -> None:
        """Report progress; raises RunCancelled once a cancel has been requested, LeaseLost once the
        run was taken over from this attempt.

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
        go_on = lifecycle.run_progress(run_id=self.id, lease=self.lease, current=current, total=total, step=step,
                                       message=message, eta=eta)
        self._last_write = now
        self._last_step = step
        if not go_on:
            raise RunCancelled(self.id)

    def log(self, message: str, *, level: str = LogLevel.INFO) -> None:
        """Record a line of what the body did, shown with the run in the admin and the API."""
        if self._log_lines >= RUN_LOG_MAX_ENTRIES:
            return
        self._log_lines += 1
        logger.log(logging.getLevelName(level.upper()), message, extra={"run_id": self.id})
        try:
            lifecycle.run_log(run_id=self.id, lease=self.lease, level=level, message=message[:RUN_LOG_MESSAGE_CHARS])
        except DATABASE_DOWN:
            # A line is not worth an attempt: it stays in the worker's log, and the body's next
            # write meets the outage (a step's result then waits in `unsaved`).
            logger.warning("run log line not stored: database unreachable", extra={"run_id": self.id})

    def stream(self, event: str, data: dict) -> None:
        """Push an event to the run's followers (jobs.live), kept a while for late joiners."""
        run_event_publish(run_id=self.id, event_type=event, data=data, kept=True)

    @contextmanager
    def watching_cancel(self, on_cancel: Callable[[], None]) -> Iterator[None]:
        """Call `on_cancel` (from a watching thread) within CANCEL_WATCH_SECONDS of a cancel of the
        run while inside; a database that does not answer only delays the call."""
        done = threading.Event()

        def watch() -> None:
            try:
                while not done.wait(CANCEL_WATCH_SECONDS):
                    try:
                        if lifecycle.run_cancel_requested(run_id=self.id):
                            on_cancel()
                            return
                    except DATABASE_DOWN:
                        close_old_connections()
            finally:
                connection.close()  # this thread's own connection

        watcher = threading.Thread(target=watch, daemon=True, name="run-cancel-watch")
        watcher.start()
        try:
            yield
        finally:
            done.set()

    def stop(self, write: Callable[[], T]) -> T:
        """Keep what the body did before it stopped on a cancel (`write`), and end the run REVOKED,
        in one transaction, only while this attempt holds it (else LeaseLost, nothing kept)."""
        with transaction.atomic():
            result = write()
            if not lifecycle.run_revoke(run_id=self.id, reason="stopped while running", lease=self.lease):
                raise LeaseLost(self.id)
            self.outcome = RunStatus.REVOKED
        return result

    def step(self, name: str, compute: Callable[[], T]) -> T:
        """The result of a step that must not be paid twice (an LLM's answer): kept the moment
        `compute` returns, and returned as kept, without calling `compute`, to any later attempt
        of the run. The value must be JSON; `compute` runs outside any transaction."""
        if name in self.checkpoints:
            logger.info("step already done; its result reused", extra={"run_id": self.id, "step": name})
            return self.checkpoints[name]
        value = compute()
        self.checkpoint({name: value})
        return value

    def checkpoint(self, values: dict[str, Any], *, write: Callable[[], Any] | None = None,
                   current: int | None = None) -> None:
        """Record that steps are done (small JSON `values` by step name, seen by every later attempt
        in `checkpoints`), and make their writes (`write`) in the same transaction, only while this
        attempt holds the run: a later attempt sees both or neither. `current`: the progress the
        checkpoint stands for, shown at least from now on. Raises RunCancelled once cancelled,
        LeaseLost once taken over."""
        try:
            with transaction.atomic():
                if write is not None:
                    lifecycle.run_lock_for_commit(run_id=self.id, lease=self.lease)
                    write()
                go_on = lifecycle.run_checkpoint(run_id=self.id, lease=self.lease, values=values, current=current)
        except DATABASE_DOWN:
            if write is None:  # a value alone (an LLM's answer) is kept here until the database is back
                self.unsaved.update(values)
            raise
        self.checkpoints.update(values)
        if not go_on:
            raise RunCancelled(self.id)

    def slice_over(self, seconds: float) -> bool:
        """True once this attempt has worked `seconds`: long work then yields its worker."""
        return time.monotonic() - self.started >= seconds

    def yield_turn(self, *, reason: str) -> None:
        """End this attempt without ending the run, after a slice of long work: the run goes back
        to its queue behind the work waiting there (other owners' first), its checkpoints kept, the
        attempt not counted. Never returns; the runner ends the attempt."""
        from jobs.services.runs import run_dispatch

        with transaction.atomic():
            status = lifecycle.run_release(run_id=self.id, lease=self.lease, reason=reason, yielded=True)
            if status is None:
                raise LeaseLost(self.id)
            if status == RunStatus.QUEUED:
                run = JobRun.objects.get(id=self.id)
                transaction.on_commit(lambda: run_dispatch(run=run))
        raise _Yielded(self.id)

    @property
    def awaiting_children(self) -> bool:
        return self.outcome == AWAITING_CHILDREN

    def fan_out(self, create_children: Callable[[], int], *, step: str, message: str) -> int:
        """Create the run's children and hand the work over to them, in one transaction, only if no
        cancel came first (else RunCancelled, and no child is kept). `create_children` enqueues them
        (services.runs.run_enqueue with `parent`) and returns how many.

        With children made, the body returns at once: the run stays PROGRESS, held by no worker,
        its progress their roll-up; the last child to end queues it again, and the body is called
        once more (with no child unfinished) for its final step. With none made it goes on now."""
        with transaction.atomic():
            lifecycle.run_lock_for_commit(run_id=self.id, lease=self.lease)
            total = create_children()
            if total:
                lifecycle.run_await_children(run_id=self.id, lease=self.lease, total=total, step=step,
                                             message=message)
                self.outcome = AWAITING_CHILDREN
        return total

    def commit(self, write: Callable[[], T]) -> T:
        """Make the body's final writes and end the run SUCCESS, in one transaction, only if no
        cancel came first (else RunCancelled, and nothing of `write` is kept). `write` returns the
        run's result."""
        with transaction.atomic():
            lifecycle.run_lock_for_commit(run_id=self.id, lease=self.lease)
            result = write()
            self.outcome = lifecycle.run_succeed(run_id=self.id, lease=self.lease, result=result,
                                                 attempt=self.attempt, worker=self.worker)
        return result


class _Yielded(Exception):
    """Raised by WorkerRunContext.yield_turn to end the attempt from wherever the body is."""


# --- one attempt ----------------------------------------------------------------------------

def run_execute(*, task: Task, spec: JobKind, run_id: str, claimed_by: str = "") -> Any:
    """Run one attempt of `spec` for the run `run_id` (called by the Celery task). `claimed_by`
    comes with a message redelivered after a claim met a database error (see lifecycle.run_claim)."""
    worker = worker_name()
    try:
        claim = lifecycle.run_claim(run_id=run_id, worker=worker, in_doubt=claimed_by)
    except DATABASE_DOWN as exc:
        # Never acknowledge the message away: publish it again (the broker needs no database),
        # saying whose claim may have landed unseen.
        countdown = min(2.0 ** task.request.retries, DATABASE_RETRY_MAX_SECONDS)
        logger.warning("database unreachable at claim; message redelivered",
                       extra={"run_id": run_id, "kind": spec.kind, "countdown": countdown, "cause": type(exc).__name__})
        close_old_connections()
        raise task.retry(kwargs={"run_id": run_id, "claimed_by": worker}, countdown=countdown, exc=exc,
                         priority=publish_priority(resume=True))
    if claim is None:
        if lifecycle.run_expire(run_id=run_id):
            raise Ignore()  # not started by its `expires`: ended REVOKED, as expired
        logger.info("run not claimable; skipped", extra={"run_id": run_id, "kind": spec.kind})
        raise Ignore()  # acknowledged; the outcome already stored for this id stays as it is

    ctx = WorkerRunContext.from_claim(run_id=run_id, claim=claim, worker=worker)
    _heartbeat.hold(run_id, claim.lease)
    try:
        return _attempt(task=task, spec=spec, ctx=ctx)
    except DATABASE_DOWN as exc:
        _database_outage(task=task, spec=spec, ctx=ctx, exc=exc)
    finally:
        _heartbeat.drop()


def _attempt(*, task: Task, spec: JobKind, ctx: WorkerRunContext) -> Any:
    run_id = ctx.id
    extra = {"run_id": run_id, "kind": spec.kind, "attempt": ctx.attempt, "max_attempts": ctx.max_attempts,
             "lease": ctx.lease}
    try:
        result = spec.body(ctx, **ctx.args)
    except LeaseLost:
        # Paused or cut off long enough to be taken over: the run is another attempt's now.
        logger.warning("attempt lost its run to a takeover; stopped without writing", extra={
            **extra, "elapsed_seconds": round(time.monotonic() - ctx.started, 3)})
        raise Ignore()
    except _Yielded:
        logger.info("run yielded its worker after a slice", extra={
            **extra, "elapsed_seconds": round(time.monotonic() - ctx.started, 3)})
        return None
    except RunCancelled:
        lifecycle.run_revoke(run_id=run_id, reason="cancelled while running", lease=ctx.lease)
        logger.info("run cancelled while running", extra=extra)
        raise Ignore()
    except DATABASE_DOWN:
        raise
    except Exception as exc:
        elapsed = round(time.monotonic() - ctx.started, 3)
        if isinstance(exc, SoftTimeLimitExceeded):
            error, event = f"timed out after {spec.soft_limit} s", "timed out"
            lifecycle.run_call_hook("on_timeout", JobRun.objects.get(id=run_id))
        else:
            error, event = f"{type(exc).__name__}: {exc}", "failed"
        trace = traceback_module.format_exc()
        if spec.retry.should_retry(exc, attempt=ctx.attempt):
            delay = spec.retry.delay_for(exc, attempt=ctx.attempt)
            if lifecycle.run_retry_later(run_id=run_id, lease=ctx.lease, attempt=ctx.attempt, error=error,
                                         delay=delay, event=event, traceback=trace, worker=ctx.worker):
                logger.warning("run attempt failed; retrying", extra={
                    **extra, "delay_seconds": round(delay, 3), "cause": error, "elapsed_seconds": elapsed})
                raise task.retry(kwargs={"run_id": run_id}, countdown=delay, exc=exc)
            # Not held any more, or cancelled: revoked only in the second case (the lease decides).
            if not lifecycle.run_revoke(run_id=run_id, reason="cancelled while running", lease=ctx.lease):
                _failure_refused(extra=extra, error=error, elapsed=elapsed)
            raise Ignore()
        if not lifecycle.run_fail(run_id=run_id, error=error, traceback=trace, exc=exc, attempt=ctx.attempt,
                                  event=event, worker=ctx.worker, lease=ctx.lease):
            _failure_refused(extra=extra, error=error, elapsed=elapsed)
            raise Ignore()
        raise  # Celery's events (and Flower) show the failure; the outcome is already stored
    if ctx.outcome is None:
        ctx.outcome = lifecycle.run_succeed(run_id=run_id, lease=ctx.lease, result=result, attempt=ctx.attempt,
                                            worker=ctx.worker)
        if ctx.outcome is None:
            logger.warning("attempt lost its run to a takeover; its outcome was refused", extra=extra)
            raise Ignore()
    logger.info("run waits for its children" if ctx.awaiting_children else "run finished",
                extra={**extra, "status": ctx.outcome, "elapsed_seconds": round(time.monotonic() - ctx.started, 3)})
    return result


def _failure_refused(*, extra: dict, error: str, elapsed: float) -> None:
    # Taken over meanwhile (the error is often the sign of it: the server ended the transaction this
    # attempt was paused in): the failure of a lost attempt is nobody's outcome.
    logger.warning("attempt lost its run to a takeover; its failure was refused",
                   extra={**extra, "cause": error, "elapsed_seconds": elapsed})


def _database_outage(*, task: Task, spec: JobKind, ctx: WorkerRunContext, exc: BaseException) -> None:
    """The database went away mid-attempt: wait for it (bounded), give the run back, and redeliver
    at once, ahead of fresh work. The next attempt resumes after this one's checkpoints; bodies are
    idempotent past them, so it replaces what this one may have written since."""
    logger.warning("database unreachable mid-attempt; waiting to release the run",
                   extra={"run_id": ctx.id, "kind": spec.kind, "cause": type(exc).__name__})
    deadline = time.monotonic() + settings.RUN_DATABASE_WAIT_SECONDS
    released = False
    try:
        while not released and time.monotonic() < deadline:
            close_old_connections()
            try:
                connection.close()
                if ctx.unsaved:  # a step finished while the database was away: kept now, not paid again
                    lifecycle.run_checkpoint(run_id=ctx.id, lease=ctx.lease, values=ctx.unsaved)
                    ctx.unsaved = {}
                if lifecycle.run_release(run_id=ctx.id, lease=ctx.lease,
                                         reason=f"database unreachable during attempt {ctx.attempt}") is None:
                    raise LeaseLost(ctx.id)  # taken over while this worker was cut off
                released = True
                break
            except DATABASE_DOWN:
                time.sleep(DATABASE_POLL_SECONDS)
    except LeaseLost:
        # The same fact as in _attempt, seen from here: the database was away, or the server ended
        # the transaction this worker was paused in (project/celery.py), and the run was taken over.
        logger.warning("attempt lost its run to a takeover; stopped without writing",
                       extra={"run_id": ctx.id, "kind": spec.kind, "lease": ctx.lease, "cut_off_from": "database"})
        raise Ignore()
    except SoftTimeLimitExceeded:
        pass  # out of time for this attempt: leave the rest to the next message
    # Released: the new message claims at once. Still held: its heartbeat has stopped, so the next
    # message may claim it once the heartbeat is stale (or the reaper takes it over).
    countdown = 0 if released else settings.RUN_HEARTBEAT_TIMEOUT_SECONDS
    raise task.retry(kwargs={"run_id": ctx.id}, countdown=countdown, exc=exc, priority=publish_priority(resume=True))


def _params_by_position(*, spec: JobKind, args: tuple, params: dict, run_id) -> dict:
    """One dict given by position is the run's args: how Celery's map, starmap and chunks call a task
    with each item (`ping.map([{"echo": "a"}, …])`, `ping.chunks([({"echo": "a"},), …], 10)`).
    Anything else by position is refused: a run's args have names."""
    if len(args) == 1 and isinstance(args[0], dict) and not params and run_id is None:
        return dict(args[0])
    raise TypeError(f"{spec.kind} takes its run's arguments by name: {spec.kind}(key=value, …), or one dict of them "
                    "(map, starmap and chunks items)")


def _takes_previous(kind: str) -> bool | None:
    """Whether `kind` takes a predecessor's result (a mutable signature in a chain); None: no such kind."""
    spec = kind_find(kind)
    return None if spec is None else spec.takes_param(PREVIOUS_RESULT)


def run_record_unannounced(*, task: Task, spec: JobKind, params: dict) -> str:
    """The run of a call that did not go through `apply_async`: a message published by name
    (`app.send_task`, `celery call`, Flower's "apply"), or the body called in this process (`task(…)`,
    `task.apply(…)`). Recorded under the message's task id (a redelivery finds it recorded), owned by
    the user its `run_owner` header names, or by nobody (the system). Its params are checked as
    any run's; a run whose params are refused is recorded, and fails at once with why."""
    from jobs.services.runs import run_record_received

    request = task.request
    # Celery puts a message's own headers on its request, as attributes.
    owner_name = getattr(request, RUN_OWNER_HEADER, None)
    return run_record_received(kind=spec.kind, run_id=request.id, params=params, owner_name=owner_name,
                               in_process=bool(request.called_directly or request.is_eager), queue=_queue_of(request))


def _queue_of(request) -> str | None:
    info = getattr(request, "delivery_info", None) or {}
    return info.get("routing_key") or None


# --- registering kinds ------------------------------------------------------------------------

class TrackedRequest(Request):
    """A tracked task's request in the worker's main process: it remembers which pool process it
    stops, so that the run that process held can be handed back on its behalf."""

    def cancel(self, pool, signal=None):
        if self.worker_pid:
            _stopped_holders[self.id] = f"{socket.gethostname()}:{self.worker_pid}"
        return super().cancel(pool, signal)


# Task id → the pool process (host:pid) a stopping worker cancelled it in.
_stopped_holders: dict[str, str] = {}


class TrackedTask(Task):
    """Celery task class of every kind. Outcomes are stored by the lifecycle together with the
    run (one statement), so Celery's own result writes are off (`ignore_result`)."""

    abstract = True
    Request = TrackedRequest
    # Attempts are counted by the run and its retry policy; Celery's own count must not stop a retry.
    max_retries = None
    ignore_result = True
    store_errors_even_if_ignored = False
    acks_late = True
    reject_on_worker_lost = True

    def apply_async(self, args=None, kwargs=None, task_id=None, **options):
        """`.delay(**args)` / `.apply_async(kwargs=args, …)` as on any Celery task: the run is recorded
        through the service and published after commit, and the result is the run's. Every option
        Celery documents is honoured durably or refused here, by name (celery_call_options); none
        is dropped. The run's own messages (a retry, a redelivery) carry `run_id`."""
        if kwargs and "run_id" in kwargs:
            return super().apply_async(args, kwargs, task_id=task_id, **options)
        if args:
            raise TypeError(f"{self.name} takes its run's arguments by name: .delay(key=value, …)")
        from jobs.services.runs import run_enqueue_from_celery

        call = celery_call_options(task_id=task_id, served_queues=set(settings.CELERY_TASK_QUEUES),
                                   takes_previous=_takes_previous, **options)
        run = run_enqueue_from_celery(kind=self.name, params=self.spec.validate_params(dict(kwargs or {})), call=call,
                                      triggered_by=TriggeredBy.SHELL)
        return self.AsyncResult(str(run.id))

    def AsyncResult(self, task_id, **kwargs):  # noqa: N802  (Celery's name)
        from jobs.results import RunResult

        return RunResult(task_id, backend=self.backend, task_name=self.name, app=self.app, **kwargs)

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        # Celery cancels unacknowledged tasks when a worker stops past its grace (cold shutdown),
        # and says so with a bare Retry; the message goes back to the queue, and so does the run.
        held_by = _stopped_holders.pop(task_id, "")
        if isinstance(exc, Retry) and exc.exc is None and held_by:
            try:
                lifecycle.run_release(run_id=task_id, held_by=held_by, reason="its worker was stopped")
            except Exception:
                logger.exception("could not release run at worker stop", extra={"run_id": task_id})


def tracked_task(**options: Any):
    """Register `body(ctx, **args)` as a kind and return its Celery task (named after the kind).

    The options are jobs.registry.JobKind's fields (kind, queue, description, retry, limits,
    hooks…), written there once; an unknown one is a TypeError at import. The Celery task takes
    only the run id; the body receives its RunContext (jobs.context) and the run's args."""

    def decorator(body: Callable[..., Any]):
        spec = JobKind(body=body, **options)
        kind_register(spec)

        @celery_app().task(bind=True, base=TrackedTask, name=spec.kind, queue=str(spec.queue),
                           soft_time_limit=spec.soft_limit, time_limit=spec.hard_limit)
        def task(self, *args, run_id: str | None = None, claimed_by: str = "", **params):
            if args:
                params = _params_by_position(spec=spec, args=args, params=params, run_id=run_id)
            if run_id is None:  # a message we did not publish, or a call in this process
                run_id = run_record_unannounced(task=self, spec=spec, params=params)
            return run_execute(task=self, spec=spec, run_id=run_id, claimed_by=claimed_by)

        task.spec = spec
        task.__doc__ = spec.description
        return task

    return decorator


@signals.worker_process_init.connect
def _warm_up(**kwargs):
    """Before a pool process takes a message: load what the kinds of its worker's queues need."""
    if not settings.WORKER_WARM_UP:
        return
    queues = queues_consumed()
    warm_ups_run({spec.warm_up for spec in kinds_all() if spec.warm_up is not None and spec.queue in queues},
                 where="worker process")


@signals.task_revoked.connect
def _revoked_by_celery(sender=None, request=None, terminated=False, **kwargs):
    """A tracked task revoked through Celery (our grace enforcement, Flower, `celery control`) ends
    REVOKED at once, instead of waiting for a heartbeat to go stale."""
    if request is None or kind_find(getattr(sender, "name", "")) is None:
        return
    reason = "terminated by Celery" if terminated else "revoked by Celery"
    for _ in range(2):  # the worker's main process rarely uses its connection; it may have gone stale
        close_old_connections()
        try:
            lifecycle.run_revoke(run_id=request.id, reason=reason)
            return
        except DATABASE_DOWN:
            connection.close()
    logger.error("could not record a Celery revoke; the reaper will", extra={"run_id": request.id})
