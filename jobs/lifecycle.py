"""Every status transition of a run, and the only code that writes `JobRun.status`.

Each transition is one conditional statement: it names the statuses it may leave, so a
duplicate message, a cancel racing a start or a reaper racing a slow worker each have exactly
one winner. Transitions that end a run write django-celery-results' TaskResult in the same
statement, so both always agree and an outcome costs one round trip and one commit.

A claim takes a lease: the run's `lease` number goes up by one and the attempt carries it. Every
write the attempt makes afterwards (heartbeat, progress, checkpoint, log, commit, retry, fail,
revoke, release, yield) is conditional on the run still holding that number, so a worker that was
paused or cut off while its run was taken over finds, on waking, that none of its writes land: it
raises LeaseLost and stops, and never cancels, fails or finishes a run it no longer holds.

| transition     | from                                    | to                            | called by                    |
|----------------|-----------------------------------------|-------------------------------|------------------------------|
| accept         | (new)                                   | QUEUED                        | services.runs.run_enqueue    |
| claim          | QUEUED or RETRY once due (QUEUED not    | STARTED, lease + 1            | runner, a message arrives    |
|                | expired); held with a stale heartbeat;  |                               |                              |
|                | never once cancelled                    |                               |                              |
| progress       | STARTED, PROGRESS, lease held           | PROGRESS                      | ctx.progress in a body       |
| checkpoint     | STARTED, PROGRESS, lease held           | (same; a step's result kept)  | ctx.step, ctx.checkpoint     |
| yield          | STARTED, PROGRESS, lease held           | QUEUED, attempt not counted   | ctx.yield_turn (a slice)     |
| await children | STARTED, PROGRESS, not cancelled        | PROGRESS, awaiting, no worker | ctx.fan_out in a body        |
| roll up        | PROGRESS, awaiting                      | (same; children's progress)   | a child ends                 |
| children done  | PROGRESS, awaiting, no child unfinished | QUEUED for its final step     | the last child to end        |
| heartbeat      | STARTED, PROGRESS, lease held           | (same; heartbeat_at)          | runner's heartbeat thread    |
| retry          | lease held, not cancelled               | RETRY, due_at set             | runner, attempts left        |
| succeed        | lease held, not cancelled               | SUCCESS                       | runner, or ctx.commit        |
| succeed        | lease held, cancelled                   | REVOKED                       | runner (cancel ignored)      |
| fail           | lease held                              | FAILURE, dead                 | runner                       |
| fail           | any unfinished (same heartbeat)         | FAILURE, dead                 | reaper, force-fail           |
| request cancel | any unfinished                          | flag; waiting or awaiting     | services.steering.run_cancel |
|                |                                         | children → REVOKED            |                              |
| revoke         | lease held                              | REVOKED                       | runner (cancel seen)         |
| revoke         | any unfinished                          | REVOKED                       | grace, task_revoked          |
| expire         | QUEUED, never started, past expires_at  | REVOKED, "expired"            | runner, beat                 |
| release        | lease held                              | QUEUED, attempt not counted   | worker stop, database outage |
| reap           | STARTED, PROGRESS, heartbeat stale      | QUEUED, or FAILURE when last  | watchdog (maintenance)       |

QUEUED and RETRY runs are (re)published by services.runs; publishing changes no status. A reaped,
released or lost run is published ahead of fresh work on its queue (jobs.broker); a yielded one
goes to the back, behind other owners' waiting work.

Every time a lease depends on is PostgreSQL's, never a worker's: claims, heartbeats, progress,
checkpoints, outcomes and due times are written as `statement_timestamp()` in the statement that
writes them, and staleness and due-ness are judged against it in the statement that judges them
(jobs.models.stale_sql), so a worker whose clock is minutes off keeps its run for as long as it
heartbeats. The times in an attempt log's entries are the writer's, shown only.

Every transition tells the run's followers once its transaction commits (jobs.live: a `status`
event; progress and log lines are events too).

A transition that ends a run sends `run_ended` once its transaction commits, for runs with a
parent, of a fair-share kind, or with a chain or chord to hand on: what waited for that run (a
parent's next children or final step, an owner's next turn, a chain's next link or a chord's body)
is published in answer, by services.fan_out, services.runs and services.canvas respectively.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest, Now
from django.dispatch import Signal
from django.utils import timezone

from jobs.constants import PROGRESS_MESSAGE_MAX_LENGTH, PROGRESS_STEP_MAX_LENGTH, RELEASE_REASON_MAX_CHARS, WORKER_MAX_LENGTH
from jobs.errors import LeaseLost, RunCancelled
from jobs.live import run_event_publish
from jobs.models import (
    RUNNING_STATUSES,
    UNFINISHED_STATUSES,
    WAITING_STATUSES,
    JobRun,
    RunStatus,
    heartbeat_timeout,
    stale_sql,
)
from jobs.registry import kind_find

logger = logging.getLogger(__name__)

# A retry message may come this much before its due time: Celery's countdown is counted on the
# publishing worker's clock, the due time on the database's.
RETRY_DUE_TOLERANCE = timedelta(seconds=1)
ATTEMPT_LOG_ERROR_CHARS = 500


def _in(statuses) -> str:
    """SQL list of statuses taken from the model (constants, never user input)."""
    return "(" + ", ".join(f"'{RunStatus(s).value}'" for s in statuses) + ")"


RUNNING_SQL = _in(RUNNING_STATUSES)
UNFINISHED_SQL = _in(UNFINISHED_STATUSES)

# Sent (run_id, parent_id, owner_id, kind, status) after the transaction that ended a run commits.
run_ended = Signal()

# Celery's shape for a stored exception, so AsyncResult(...).result decodes it.
def _exception_payload(kind: str, message: str, module: str = "celery.exceptions") -> str:
    return json.dumps({"exc_type": kind, "exc_message": [message], "exc_module": module})


# Appended to a transition whose `changed` CTE returns _ENDED_COLUMNS: the TaskResult row follows
# in the same statement, which returns (status, parent_id, owner_id, kind, continuing) of the run it ended.
_ENDED_COLUMNS = "id, kind, status, started_at, parent_id, owner_id, args, queue, attempts, continuation"
_TASK_RESULT_UPSERT = """, stored AS (
INSERT INTO django_celery_results_taskresult
       (task_id, task_name, task_args, task_kwargs, status, worker, content_type, content_encoding,
        result, date_created, date_started, date_done, traceback, meta, periodic_task_name)
SELECT changed.id::text, changed.kind, '[]', changed.args::text, changed.status, %(worker)s,
       'application/json', 'utf-8',
       COALESCE(CASE WHEN changed.status = 'REVOKED' THEN %(revoked)s END, %(task_result)s),
       statement_timestamp(), changed.started_at, statement_timestamp(),
       %(task_traceback)s,
       jsonb_build_object('children', '[]'::jsonb, 'name', changed.kind, 'queue', changed.queue,
                          'retries', GREATEST(changed.attempts - 1, 0))::text, NULL
  FROM changed
    ON CONFLICT (task_id) DO UPDATE
   SET status = EXCLUDED.status, result = EXCLUDED.result, date_done = EXCLUDED.date_done, meta = EXCLUDED.meta,
       task_name = EXCLUDED.task_name, task_args = EXCLUDED.task_args, task_kwargs = EXCLUDED.task_kwargs,
       traceback = EXCLUDED.traceback, worker = COALESCE(NULLIF(EXCLUDED.worker, ''),
       django_celery_results_taskresult.worker), date_started = EXCLUDED.date_started
RETURNING status
)
SELECT stored.status, changed.parent_id, changed.owner_id, changed.kind, changed.continuation IS NOT NULL
  FROM stored CROSS JOIN changed
"""


def _task_params(*, run_id: str, now: datetime, result: str, traceback: str = "", worker: str = "",
                 revoked: str | None = None) -> dict:
    """The values the task result is written with; `revoked` is the result instead where the
    statement ends the run REVOKED (a success that met a cancel)."""
    return {"task_result": result,
            "task_traceback": traceback or None, "worker": worker, "revoked": revoked}


def _log_entry(*, attempt: int | None, error: str, delay: float | None, now: datetime, event: str) -> str:
    return json.dumps([{"attempt": attempt, "event": event, "error": error[:ATTEMPT_LOG_ERROR_CHARS],
                        "delay": None if delay is None else round(delay, 3), "at": now.isoformat()}])


def _execute(sql: str, params: dict | list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _tell(run_id, event_type: str = "status", **data) -> None:
    """After commit (at once outside a transaction), tell the run's followers (jobs.live)."""
    transaction.on_commit(lambda: run_event_publish(run_id=run_id, event_type=event_type, data=data))


def _announce_end(run_id, rows: list[tuple]) -> None:
    """After commit, tell the run's followers how it ended, and announce that a run with a parent,
    of a fair-share kind, or with a chain or chord to hand on, ended (run_ended)."""
    if not rows:
        return
    status, parent_id, owner_id, kind, continuing = rows[0]
    _tell(run_id, status=status)
    spec = kind_find(kind)
    if parent_id is None and not (spec and spec.fair_share) and not continuing:
        return
    transaction.on_commit(lambda: run_ended.send(sender=JobRun, run_id=str(run_id), parent_id=parent_id,
                                                 owner_id=owner_id, kind=kind, status=status, continuing=continuing))


def run_call_hook(name: str, run: JobRun) -> None:
    """Run a kind's hook (`on_final_failure`, `on_timeout`, `on_revoked`) inside the caller's
    transaction; a broken hook is logged and never blocks the transition."""
    spec = kind_find(run.kind)
    hook = getattr(spec, name, None)
    if hook is None:
        return
    try:
        with transaction.atomic():
            hook(run=run, **run.args)
    except Exception:
        logger.exception("run hook raised", extra={"run_id": str(run.id), "kind": run.kind,
                                                   "hook": getattr(hook, "__name__", "hook")})


# --- accept -------------------------------------------------------------------------------

_ACCEPT_COLUMNS = JobRun._meta.concrete_fields


# Written by the database's clock: when the message was (optimistically) sent.
_ACCEPT_DB_TIMES = ("dispatched_at",)


@cache
def _accept_sql(*, published: bool, if_absent: bool = False) -> str:
    db_times = _ACCEPT_DB_TIMES if published else ()
    return "INSERT INTO jobs_jobrun ({}) VALUES ({}){}".format(
        ", ".join(connection.ops.quote_name(field.column) for field in _ACCEPT_COLUMNS),
        ", ".join("statement_timestamp()" if field.attname in db_times else "%s" for field in _ACCEPT_COLUMNS),
        " ON CONFLICT (id) DO NOTHING RETURNING id" if if_absent else "")


def run_accept(*, if_absent: bool = False, **fields: Any) -> JobRun | None:
    """A new run, QUEUED. Marked dispatched optimistically (one write fewer); cleared if publishing fails.
    A run with a `due_at` is not published now: beat publishes it when it is due. `if_absent`: the
    run's id is given, and a run with that id already recorded makes this return None (a chain's
    next link or a chord's body, handed on by whichever comes first).

    One INSERT written once, with the model's defaults: `objects.create` compiles the same
    statement anew for every run, which was a third of the enqueue's time in Python
    (bench/task_overhead.py, profiled). Outside a transaction the INSERT is its own, committed in
    the same round trip."""
    published = fields.get("due_at") is None
    run = JobRun(status=RunStatus.QUEUED, dispatched_at=timezone.now() if published else None, **fields)
    db_times = _ACCEPT_DB_TIMES if published else ()
    rows = _execute(_accept_sql(published=published, if_absent=if_absent),
                    [field.get_db_prep_save(getattr(run, field.attname), connection)
                     for field in _ACCEPT_COLUMNS if field.attname not in db_times])
    if if_absent and not rows:
        return None
    run._state.adding, run._state.db = False, connection.alias
    return run


def runs_handed_on(*, run_ids: list) -> None:
    """Bookkeeping (no status change): what followed these runs in a chain or chord is recorded."""
    JobRun.objects.filter(id__in=run_ids).update(continuation=None)


def run_dispatched(*, run_id: str, sent: bool) -> None:
    """Bookkeeping of publishing (no status change): the run's message was sent now (by the
    database's clock, which the watchdog judges a lost message by), or was not sent."""
    JobRun.objects.filter(id=run_id, status__in=WAITING_STATUSES).update(dispatched_at=Now() if sent else None)


# --- claim, progress, heartbeat -------------------------------------------------------------

@dataclass(frozen=True)
class Claim:
    args: dict
    attempt: int
    max_attempts: int
    correlation_id: str
    lease: int
    checkpoints: dict
    started_at: datetime


# A run not started by its `expires_at` (Celery's `expires`) never starts: the claim refuses it and
# `run_expire` ends it.
EXPIRED_SQL = "(started_at IS NULL AND expires_at IS NOT NULL AND expires_at <= statement_timestamp())"

_CLAIM_SQL = f"""
UPDATE jobs_jobrun
   SET status = 'STARTED', started_at = COALESCE(started_at, statement_timestamp()), claimed_at = statement_timestamp(),
       heartbeat_at = statement_timestamp(), due_at = NULL,
       attempts = CASE WHEN status = 'STARTED' AND worker = %(in_doubt)s THEN attempts ELSE attempts + 1 END,
       worker = %(worker)s, lease = lease + 1
 WHERE id = %(id)s AND NOT cancel_requested
   AND ((status = 'QUEUED' AND (due_at IS NULL OR due_at <= statement_timestamp() + %(due_tolerance)s)
         AND NOT {EXPIRED_SQL})
        OR (status = 'RETRY' AND (due_at IS NULL OR due_at <= statement_timestamp() + %(due_tolerance)s))
        OR ({stale_sql("%(stale_after)s")} AND attempts < max_attempts)
        OR (status = 'STARTED' AND worker = %(in_doubt)s
            AND heartbeat_at < statement_timestamp() - %(unheld_after)s))
RETURNING args, attempts, max_attempts, correlation_id, lease, checkpoints, started_at
"""


def run_claim(*, run_id: str, worker: str = "", in_doubt: str = "") -> Claim | None:
    """Take the run for one attempt, or None: finished, cancelled, held by a live worker, or a RETRY not yet due.

    `in_doubt` names a worker whose claim of this run met a database error: its claim may have
    committed with the answer lost, so that claim is taken over (not counted twice) once it has
    missed two heartbeats (a worker really holding the run would have written them)."""
    rows = _execute(_CLAIM_SQL, {
        "id": run_id, "worker": worker[:WORKER_MAX_LENGTH], "due_tolerance": RETRY_DUE_TOLERANCE,
        "stale_after": heartbeat_timeout(),
        "in_doubt": in_doubt[:WORKER_MAX_LENGTH] or None,
        "unheld_after": timedelta(seconds=2 * settings.RUN_HEARTBEAT_SECONDS),
    })
    if not rows:
        return None
    args, attempts, max_attempts, correlation_id, lease, checkpoints, started_at = rows[0]
    _tell(run_id, status=RunStatus.STARTED.value, attempt=attempts, max_attempts=max_attempts)
    args, checkpoints = _json(args), _json(checkpoints)
    return Claim(args=args if isinstance(args, dict) else {}, attempt=attempts, max_attempts=max_attempts,
                 correlation_id=correlation_id, lease=lease,
                 checkpoints=checkpoints if isinstance(checkpoints, dict) else {}, started_at=started_at)


def _json(value):
    return json.loads(value) if isinstance(value, str) else value  # Django leaves jsonb as text on raw cursors


HELD_SQL = f"id = %(id)s AND lease = %(lease)s AND status IN {RUNNING_SQL}"

_PROGRESS_SQL = f"""
UPDATE jobs_jobrun
   SET status = 'PROGRESS', progress_current = %(current)s, progress_total = %(total)s,
       progress_step = %(step)s, progress_message = %(message)s, eta_seconds = %(eta)s, heartbeat_at = statement_timestamp()
 WHERE {HELD_SQL}
RETURNING cancel_requested
"""


def _go_on(run_id: str, rows: list[tuple]) -> bool:
    """After a write conditional on the lease: LeaseLost if it did not land, else whether no cancel came."""
    if not rows:
        raise LeaseLost(run_id)
    return not rows[0][0]


def run_progress(*, run_id: str, lease: int, current: int, total: int | None, step: str, message: str,
                 eta: float | None) -> bool:
    """Record progress; True while the run should go on, False once cancelled, LeaseLost if not held."""
    rows = _execute(_PROGRESS_SQL, {"id": run_id, "lease": lease, "current": current, "total": total,
                                    "step": step[:PROGRESS_STEP_MAX_LENGTH],
                                    "message": message[:PROGRESS_MESSAGE_MAX_LENGTH], "eta": eta})
    go_on = _go_on(run_id, rows)
    _tell(run_id, "progress", **progress_event(current=current, total=total, step=step[:PROGRESS_STEP_MAX_LENGTH],
                                               message=message[:PROGRESS_MESSAGE_MAX_LENGTH], eta=eta))
    return go_on


def progress_event(*, current: int, total: int | None, step: str, message: str, eta: float | None) -> dict:
    """A `progress` event's data, as every stream shows it (and JobRun.percent computes it)."""
    percent = round(min(100.0, 100.0 * current / total), 1) if total else None
    return {"current": current, "total": total, "percent": percent, "step": step, "message": message,
            "eta_seconds": eta}


def run_cancel_requested(*, run_id: str) -> bool:
    """Whether a cancel of the run was requested (a read: what a body watching for one asks)."""
    return JobRun.objects.filter(id=run_id, cancel_requested=True).exists()


def run_heartbeat(*, run_id: str, lease: int) -> bool:
    """Refresh the held run's heartbeat; False once the attempt no longer holds it."""
    return bool(JobRun.objects.filter(id=run_id, lease=lease, status__in=RUNNING_STATUSES)
                .update(heartbeat_at=Now()))


_CHECKPOINT_SQL = f"""
UPDATE jobs_jobrun
   SET checkpoints = checkpoints || %(values)s::jsonb, heartbeat_at = statement_timestamp(),
       progress_current = GREATEST(progress_current, COALESCE(%(current)s, progress_current))
 WHERE {HELD_SQL}
RETURNING cancel_requested
"""


_LOG_SQL = f"""
INSERT INTO jobs_jobrunlogentry (run_id, attempt, level, message, created_at)
SELECT id, attempts, %(level)s, %(message)s, statement_timestamp() FROM jobs_jobrun WHERE {HELD_SQL}
RETURNING false, id, created_at
"""


def run_log(*, run_id: str, lease: int, level: str, message: str) -> None:
    """A line of what the body did, kept only while the attempt holds the run (else LeaseLost)."""
    rows = _execute(_LOG_SQL, {"id": run_id, "lease": lease, "level": level, "message": message})
    _go_on(run_id, rows)
    _, entry_id, created_at = rows[0]
    _tell(run_id, "log", id=entry_id, level=level, message=message, at=created_at.isoformat())


def run_checkpoint(*, run_id: str, lease: int, values: dict[str, Any], current: int | None = None) -> bool:
    """Keep what completed steps left (JSON, by step name) for any later attempt of the run, and
    with `current` the progress they stand for (never lowered): a throttled report skipped just
    before would otherwise leave the run showing less than it keeps. Like a progress report: True
    to go on, False once cancelled, LeaseLost if the attempt no longer holds it."""
    rows = _execute(_CHECKPOINT_SQL, {"id": run_id, "lease": lease, "values": json.dumps(values),
                                      "current": current})
    return _go_on(run_id, rows)


# --- fan-out: a parent awaiting its children ---------------------------------------------------

def run_await_children(*, run_id: str, lease: int, total: int, step: str, message: str) -> bool:
    """Inside the transaction that created the run's children: the body ends its attempt without
    ending the run, which waits (held by no worker, never reaped) for its children. False if the
    run is no longer held or was cancelled."""
    return bool(JobRun.objects.filter(id=run_id, lease=lease, status__in=RUNNING_STATUSES,
                                      cancel_requested=False).update(
        status=RunStatus.PROGRESS, awaiting_children=True, worker="", heartbeat_at=Now(),
        progress_current=0, progress_total=total, progress_step=step[:PROGRESS_STEP_MAX_LENGTH],
        progress_message=message[:PROGRESS_MESSAGE_MAX_LENGTH],
        eta_seconds=None)) and _told(run_id, status=RunStatus.PROGRESS.value, awaiting_children=total)


def _told(run_id, **data) -> bool:
    _tell(run_id, **data)
    return True


def run_roll_up(*, run_id: str, current: int, total: int, eta: float | None) -> None:
    """A parent's progress is its children's: how many have ended, and the ETA at their rate.

    Never backwards: children ending together each count in their own transaction, and the one that
    counted fewer may write last."""
    JobRun.objects.filter(id=run_id, awaiting_children=True, status__in=RUNNING_STATUSES).update(
        progress_current=Greatest(F("progress_current"), current), progress_total=total, eta_seconds=eta,
        heartbeat_at=Now())


_CHILDREN_DONE_SQL = f"""
UPDATE jobs_jobrun
   SET status = 'QUEUED', awaiting_children = false, attempts = GREATEST(attempts - 1, 0), worker = '',
       dispatched_at = statement_timestamp(), eta_seconds = NULL,
       progress_current = GREATEST(progress_current, COALESCE(progress_total, 0))
 WHERE id = %(id)s AND awaiting_children AND status IN {RUNNING_SQL} AND NOT cancel_requested
   AND NOT EXISTS (SELECT 1 FROM jobs_jobrun child
                    WHERE child.parent_id = %(id)s AND child.status IN {UNFINISHED_SQL})
RETURNING id
"""


def run_children_done(*, run_id: str) -> bool:
    """QUEUED again for its final step once no child is unfinished; the handing over is not counted
    as an attempt. One conditional statement: when children end at the same moment, or an end is
    announced twice, exactly one caller gets True and publishes the parent."""
    return bool(_execute(_CHILDREN_DONE_SQL, {"id": run_id})) and _told(run_id, status=RunStatus.QUEUED.value,
                                                                      reason="its children are done")


def run_lock_for_commit(*, run_id: str, lease: int) -> None:
    """Inside the transaction of a body's writes: hold the run's row until commit, and refuse if the
    attempt no longer holds the run (LeaseLost) or a cancel came first (RunCancelled). A cancel or a
    takeover arriving meanwhile waits for the lock, then finds the writes made."""
    rows = _execute(f"SELECT cancel_requested FROM jobs_jobrun WHERE {HELD_SQL} FOR UPDATE",
                    {"id": run_id, "lease": lease})
    if not _go_on(run_id, rows):
        raise RunCancelled(run_id)


# --- outcomes -------------------------------------------------------------------------------

_SUCCEED_SQL = f"""
WITH changed AS (
    UPDATE jobs_jobrun
       SET status = CASE WHEN cancel_requested THEN 'REVOKED' ELSE 'SUCCESS' END,
           result = CASE WHEN cancel_requested THEN NULL ELSE %(result)s::jsonb END,
           finished_at = statement_timestamp(), heartbeat_at = statement_timestamp(), error = '', eta_seconds = NULL,
           attempt_log = CASE WHEN cancel_requested THEN attempt_log || %(cancel_entry)s::jsonb
                              ELSE attempt_log END,
           checkpoints = '{{}}'::jsonb
     WHERE {HELD_SQL}
    RETURNING {_ENDED_COLUMNS}
)
""" + _TASK_RESULT_UPSERT


def run_succeed(*, run_id: str, lease: int, result: Any, attempt: int, worker: str = "") -> str | None:
    """End an attempt that returned: SUCCESS, or REVOKED if a cancel was requested meanwhile; what
    its steps kept is no longer needed. Returns the final status, or None if the attempt no longer
    held the run (taken over, revoked)."""
    now = timezone.now()
    encoded = json.dumps(result)
    params = {"id": run_id, "lease": lease, "result": None if result is None else encoded,
              "cancel_entry": _log_entry(attempt=attempt, error="cancelled", delay=None, now=now, event="cancelled"),
              **_task_params(run_id=run_id, now=now, result=encoded, worker=worker,
                             revoked=_exception_payload("TaskRevokedError", "cancelled"))}
    rows = _execute(_SUCCEED_SQL, params)
    status = rows[0][0] if rows else None
    if status == RunStatus.REVOKED:
        run_call_hook("on_revoked", JobRun.objects.get(id=run_id))
    _announce_end(run_id, rows)
    return status


_RETRY_SQL = f"""
WITH changed AS (
    UPDATE jobs_jobrun
       SET status = 'RETRY', error = %(error)s, heartbeat_at = statement_timestamp(),
           due_at = statement_timestamp() + %(delay)s,
           dispatched_at = statement_timestamp(), attempt_log = attempt_log || %(entry)s::jsonb
     WHERE {HELD_SQL} AND NOT cancel_requested
    RETURNING {_ENDED_COLUMNS}
)
""" + _TASK_RESULT_UPSERT


def run_retry_later(*, run_id: str, lease: int, attempt: int, error: str, delay: float, event: str = "failed",
                    traceback: str = "", worker: str = "") -> bool:
    """A failed attempt with attempts left: RETRY, due `delay` seconds from now. False if no longer held
    or cancelled (the caller then revokes, conditional on the lease)."""
    now = timezone.now()
    rows = _execute(_RETRY_SQL, {
        "id": run_id, "lease": lease, "error": error, "delay": timedelta(seconds=delay),
        "entry": _log_entry(attempt=attempt, error=error, delay=delay, now=now, event=event),
        **_task_params(run_id=run_id, now=now, traceback=traceback, worker=worker,
                       result=_exception_payload("Retry", error, "celery.exceptions")),
    })
    # The time is this process's, shown only: the due time that counts is the database's.
    return bool(rows) and _told(run_id, status=RunStatus.RETRY.value, attempt=attempt, error=error,
                                retry_in_seconds=round(delay, 3),
                                retry_at=(now + timedelta(seconds=delay)).isoformat())


_FAIL_SQL = f"""
WITH changed AS (
    UPDATE jobs_jobrun
       SET status = 'FAILURE', dead = true, error = %(error)s, traceback = %(traceback)s,
           finished_at = statement_timestamp(), heartbeat_at = statement_timestamp(), eta_seconds = NULL, due_at = NULL,
           attempt_log = attempt_log || %(entry)s::jsonb
     WHERE id = %(id)s AND status IN {UNFINISHED_SQL}
       AND (%(lease)s::integer IS NULL OR (lease = %(lease)s AND status IN {RUNNING_SQL}))
       AND (%(heartbeat)s::timestamptz IS NULL OR heartbeat_at = %(heartbeat)s)
    RETURNING {_ENDED_COLUMNS}
)
""" + _TASK_RESULT_UPSERT


def run_fail(*, run_id: str, error: str, attempt: int | None, traceback: str = "", event: str = "failed",
             exc: BaseException | None = None, worker: str = "", lease: int | None = None,
             only_if_heartbeat: datetime | None = None) -> bool:
    """End the run FAILURE and dead, and call the kind's on_final_failure exactly once, in the same
    transaction (nobody sees a failed run without its consequence). True if this call ended it.

    An attempt fails its run only while it holds `lease`; the reaper and a force-fail only if the
    heartbeat is still the one they judged stale (a worker that wakes up meanwhile wins)."""
    now = timezone.now()
    with transaction.atomic():
        rows = _execute(_FAIL_SQL, {
            "id": run_id, "error": error, "traceback": traceback, "heartbeat": only_if_heartbeat, "lease": lease,
            "entry": _log_entry(attempt=attempt, error=error, delay=None, now=now, event=event),
            **_task_params(run_id=run_id, now=now, traceback=traceback, worker=worker,
                           result=_exception_payload(type(exc).__name__ if exc else "RunFailed", error,
                                                     type(exc).__module__ if exc else "jobs.errors")),
        })
        if not rows:
            return False
        run = JobRun.objects.get(id=run_id)
        run_call_hook("on_final_failure", run)
        _announce_end(run_id, rows)
    logger.error("run failed for good", extra={
        "run_id": str(run_id), "kind": run.kind, "attempts": run.attempts, "max_attempts": run.max_attempts,
        "error": error, "owner_id": run.owner_id, "correlation_id": run.correlation_id,
    })
    _report_to_sentry(run=run, error=error, exc=exc)
    return True


def _report_to_sentry(*, run: JobRun, error: str, exc: BaseException | None) -> None:
    if not settings.SENTRY_DSN:
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("run_kind", run.kind)
        scope.set_context("run", {"id": str(run.id), "attempts": run.attempts, "args": run.args})
        if exc is not None:
            sentry_sdk.capture_exception(exc)
        else:
            sentry_sdk.capture_message(f"run {run.id} failed: {error}", level="error")


# --- cancel and revoke ----------------------------------------------------------------------

def run_request_cancel(*, run_id: str) -> str | None:
    """Flag the run cancelled (durable: a message arriving later finds the flag). A waiting run, and
    one awaiting its children (no worker holds it), is revoked at once. Returns the status the run
    has now, or None if it had already finished."""
    with transaction.atomic():
        flagged = (JobRun.objects.filter(id=run_id, status__in=UNFINISHED_STATUSES)
                   .update(cancel_requested=True, cancel_requested_at=Coalesce(F("cancel_requested_at"), Now())))
        if not flagged:
            return None
        status, awaiting = JobRun.objects.values_list("status", "awaiting_children").get(id=run_id)
        if status in WAITING_STATUSES or awaiting:
            run_revoke(run_id=run_id, reason="cancelled before it started" if not awaiting
                       else "cancelled while its children ran")
            return RunStatus.REVOKED
        _tell(run_id, status=status, cancel_requested=True)
    return status


_REVOKE_SQL = f"""
WITH changed AS (
    UPDATE jobs_jobrun
       SET status = 'REVOKED', cancel_requested = true,
           cancel_requested_at = COALESCE(cancel_requested_at, statement_timestamp()), finished_at = statement_timestamp(),
           eta_seconds = NULL, due_at = NULL, attempt_log = attempt_log || %(entry)s::jsonb,
           awaiting_children = false
     WHERE id = %(id)s AND status IN {UNFINISHED_SQL}
       AND (%(lease)s::integer IS NULL OR (lease = %(lease)s AND status IN {RUNNING_SQL}))
    RETURNING {_ENDED_COLUMNS}
)
""" + _TASK_RESULT_UPSERT


def run_revoke(*, run_id: str, reason: str = "cancelled", lease: int | None = None) -> bool:
    """End the run REVOKED (and call the kind's on_revoked once). True if this call ended it.

    An attempt that saw the cancel revokes only while it holds `lease`: a paused worker that wakes
    to find its run taken over must not end the run its successor holds."""
    now = timezone.now()
    with transaction.atomic():
        run = JobRun.objects.filter(id=run_id).first()
        if run is None:
            return False
        rows = _execute(_REVOKE_SQL, {
            "id": run_id, "lease": lease, "entry": _log_entry(attempt=run.attempts or None, error=reason, delay=None, now=now,
                                              event="cancelled"),
            **_task_params(run_id=run_id, now=now, result=_exception_payload("TaskRevokedError", reason)),
        })
        if not rows:
            return False
        run_call_hook("on_revoked", run)
        _announce_end(run_id, rows)
    logger.info("run revoked", extra={"run_id": str(run_id), "kind": run.kind, "reason": reason})
    return True


_EXPIRE_SQL = f"""
WITH changed AS (
    UPDATE jobs_jobrun
       SET status = 'REVOKED', finished_at = statement_timestamp(), eta_seconds = NULL, due_at = NULL,
           error = %(reason)s, attempt_log = attempt_log || %(entry)s::jsonb
     WHERE id = %(id)s AND status = 'QUEUED' AND {EXPIRED_SQL}
    RETURNING {_ENDED_COLUMNS}
)
""" + _TASK_RESULT_UPSERT


def run_expire(*, run_id: str) -> bool:
    """End REVOKED, as expired, a run that was not started by its `expires_at`. True if this call ended it."""
    now = timezone.now()
    reason = "expired: not started by the time its caller set (expires)"
    with transaction.atomic():
        rows = _execute(_EXPIRE_SQL, {
            "id": run_id, "reason": reason,
            "entry": _log_entry(attempt=None, error=reason, delay=None, now=now, event="expired"),
            **_task_params(run_id=run_id, now=now, result=_exception_payload("TaskRevokedError", "expired")),
        })
        if not rows:
            return False
        _announce_end(run_id, rows)
    logger.info("run expired", extra={"run_id": str(run_id)})
    return True


# --- release and reap -----------------------------------------------------------------------

def run_release(*, run_id: str, reason: str, lease: int | None = None, held_by: str = "",
                yielded: bool = False) -> str | None:
    """Give a held run back for redelivery (its attempt is not counted): the worker is stopping,
    lost its database mid-attempt, or `yielded` its slice. A cancelled run is revoked instead. What
    its steps kept stays for the next attempt. Returns the run's status now (QUEUED or REVOKED), or
    None if the attempt no longer held it.

    The attempt is named by its `lease`, or, where only the worker's main process is left to speak
    for a pool process it stopped, by the process that holds the run (`held_by`, host:pid)."""
    holder = {"lease": lease} if lease is not None else {"worker": held_by[:WORKER_MAX_LENGTH] or "?"}
    with transaction.atomic():
        run = JobRun.objects.select_for_update().filter(id=run_id, status__in=RUNNING_STATUSES, **holder).first()
        if run is None:
            return None
        lease = run.lease
        if run.cancel_requested:
            revoked = run_revoke(run_id=run_id, reason="cancelled while its worker stopped", lease=lease)
            return RunStatus.REVOKED if revoked else None
        JobRun.objects.filter(id=run_id).update(
            status=RunStatus.QUEUED, attempts=max(run.attempts - 1, 0), dispatched_at=Now(),
            error="" if yielded else f"released: {reason}"[:RELEASE_REASON_MAX_CHARS], worker="", eta_seconds=None)
        _tell(run_id, status=RunStatus.QUEUED.value, reason=reason)
    logger.info("run yielded its worker" if yielded else "run released for redelivery",
                extra={"run_id": str(run_id), "kind": run.kind, "reason": reason})
    return RunStatus.QUEUED


# How long a takeover waits for a run's row. A worker paused inside a transaction holds it until the
# server ends that transaction (worker sessions: idle_in_transaction_session_timeout, project/celery.py);
# the watchdog goes on with the other stale runs instead of queueing behind it, and comes back.
REAP_LOCK_TIMEOUT_MS = 1000
_LOCK_NOT_AVAILABLE = "55P03"


def run_reap(*, run: JobRun) -> str | None:
    """A held run whose worker stopped heartbeating: QUEUED again while attempts remain, else FAILURE.

    Conditional on the heartbeat it was found with, so a worker that wakes up meanwhile wins. None
    also when its row stays locked past REAP_LOCK_TIMEOUT_MS: the next pass tries again."""
    try:
        with transaction.atomic():
            _execute(f"SET LOCAL lock_timeout = {REAP_LOCK_TIMEOUT_MS}", {})
            return _reap(run)
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        logger.info("stale run's row is locked; left for the next pass", extra={"run_id": str(run.id)})
        return None


def _reap(run: JobRun) -> str | None:
    if run.cancel_requested:
        return RunStatus.REVOKED if run_revoke(run_id=str(run.id), reason="cancelled; its worker was lost") else None
    error = f"worker lost during attempt {run.attempts} ({run.worker or 'unknown worker'}): no heartbeat"
    if run.attempts < run.max_attempts:
        now = timezone.now()
        entry = _log_entry(attempt=run.attempts, error=error, delay=0, now=now, event="worker lost")
        changed = _execute(
            f"UPDATE jobs_jobrun SET status = 'QUEUED', dispatched_at = statement_timestamp(), error = %(error)s, worker = '', "
            f"attempt_log = attempt_log || %(entry)s::jsonb "
            f"WHERE id = %(id)s AND status IN {RUNNING_SQL} AND heartbeat_at = %(heartbeat)s RETURNING id",
            {"error": error, "entry": entry, "id": run.id, "heartbeat": run.heartbeat_at})
        return RunStatus.QUEUED if changed and _told(run.id, status=RunStatus.QUEUED.value, reason=error) else None
    failed = run_fail(run_id=str(run.id), error=error, attempt=run.attempts, event="worker lost",
                      only_if_heartbeat=run.heartbeat_at)
    return RunStatus.FAILURE if failed else None


def runs_stale(*, limit: int) -> list[JobRun]:
    """Runs that have lost their worker (jobs.models.stale_sql), oldest heartbeat first."""
    return list(JobRun.objects.stalled().order_by("heartbeat_at")[:limit])
