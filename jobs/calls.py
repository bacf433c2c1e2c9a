"""Celery's calling options on a tracked task (`apply_async(…, **options)`): each one honoured
durably or refused at the call, by name. None is dropped in silence: work a caller thinks was put
off, routed or limited, and was not, is work lost in another way. docs/celery.md says what each
option does on a tracked run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

# A header naming the user a run belongs to (a username), for calls that reach a tracked task
# without our API: `send_task(…, headers={"run_owner": "alice"})`, `celery call --headers`.
RUN_OWNER_HEADER = "run_owner"

# Options Celery's own machinery passes to every member of a group (its bookkeeping): they carry
# nothing a tracked run needs, and accepting them is what lets `group(…)` record its members.
CANVAS_BOOKKEEPING = frozenset({"producer", "add_to_parent", "group_id", "group_index", "root_id", "parent_id",
                                "route_name", "reply_to"})

# Refused, each with the reason the caller reads in the TypeError.
REFUSED = {
    "link": "callbacks are not run for tracked tasks: call the next task from the body, or use a job",
    "link_error": "error callbacks are not run for tracked tasks: a kind's on_final_failure hook is",
    "priority": "a run's priority is the platform's (resumed work first, then in order): it cannot be set",
    "shadow": "a tracked run is listed under its kind; another name would hide it",
    "time_limit": "a kind's limits are set where it is declared (tracked_task)",
    "soft_time_limit": "a kind's limits are set where it is declared (tracked_task)",
    "retry": "a run is published after commit, and the watchdog publishes it again if the broker was away",
    "retry_policy": "a run is published after commit, and the watchdog publishes it again if the broker was away",
    "exchange": "runs are routed by queue: give queue=",
    "serializer": "a run's message carries its id alone, always as JSON",
    "compression": "a run's message carries its id alone",
    "connection": "runs are published after commit on the platform's own connection",
    "stamped_headers": "stamping is not supported on tracked tasks",
}
# Accepted and without effect, said in the docs.
WITHOUT_EFFECT = frozenset({"ignore_result"})
# The keyword a mutable signature in a chain or a chord's body receives its predecessor's result
# under (tracked tasks take their args by name; Celery would prepend it to the positional ones).
PREVIOUS_RESULT = "previous"
# A chained signature's own options: its frozen id, its queue, and Celery's bookkeeping.
LINK_OPTIONS = CANVAS_BOOKKEEPING | {"task_id", "queue", "chord_size"}


@dataclass(frozen=True)
class CeleryCall:
    """What a caller's options ask of the run."""

    run_id: uuid.UUID | None = None
    due_at: datetime | None = None
    expires_at: datetime | None = None
    queue: str | None = None
    owner_name: str | None = None
    # What follows the run: {"chain": [link, …]} in order, or {"chord": {"group_id", "index", "body": link}}.
    continuation: dict | None = None
    # The group, chain or chord the run is a member of: Celery's root id (a group's own id when alone).
    canvas_id: uuid.UUID | None = None


def canvas_link(signature, *, takes_previous: Callable[[str], bool | None]) -> dict:
    """A chain's next signature, or a chord's body, as the run that will follow keeps it: its kind,
    frozen id, args and queue. TypeError for anything a tracked run cannot follow with."""
    name = signature.get("task")
    takes = takes_previous(name)
    if takes is None:
        raise TypeError(f"{name} is not a tracked task: a chain or chord of tracked tasks is made of tracked tasks")
    if signature.get("args"):
        raise TypeError(f"{name} takes its run's arguments by name: use {name.rsplit('.', 1)[-1]}.s(key=value, …)")
    immutable = bool(signature.get("immutable"))
    if not immutable and not takes:
        raise TypeError(f"{name}.s() would receive the previous result as {PREVIOUS_RESULT}=, which {name} does "
                        f"not take: use .si() to ignore it")
    options = dict(signature.get("options") or {})
    refused = sorted(name for name, value in options.items() if name not in LINK_OPTIONS and value is not None)
    if refused:
        raise TypeError(f"{', '.join(refused)}= on a chained or chord-body signature is not supported")
    return {"kind": name, "task_id": str(options.get("task_id") or uuid.uuid4()), "kwargs": dict(signature.get("kwargs") or {}),
            "immutable": immutable, "queue": options.get("queue")}


def _continuation(*, chain, chord, group_id, group_index, takes_previous) -> dict | None:
    if chain and chord:
        raise TypeError("a chain inside a chord (or a chord inside a chain) is not supported on tracked tasks")
    if chain:
        # Celery passes the links still to run last first (its worker pops the next off the end).
        return {"chain": [canvas_link(link, takes_previous=takes_previous) for link in reversed(list(chain))]}
    if chord:
        if group_id is None or group_index is None:
            raise TypeError("chord= is given by chord() to its header's members, not by hand")
        return {"chord": {"group_id": str(group_id), "index": int(group_index),
                          "body": canvas_link(chord, takes_previous=takes_previous)}}
    return None


def _when(value, *, name: str, now: datetime) -> datetime:
    """A time given as Celery takes it: seconds from now, or a datetime (naive ones are UTC, as Celery's)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return now + timedelta(seconds=float(value))
    raise TypeError(f"{name} must be seconds or a datetime, not {type(value).__name__}")


def celery_call_options(*, task_id=None, served_queues: set[str], now: datetime | None = None,
                        takes_previous: Callable[[str], bool | None] = lambda name: None, **options) -> CeleryCall:
    """The run's `CeleryCall` from `apply_async`'s options; TypeError naming the first option that
    is refused or unknown, ValueError naming one whose value cannot be."""
    now = now or datetime.now(timezone.utc)
    for name, value in options.items():
        if name in REFUSED:
            if value in (None, False, [], (), {}):
                continue  # not asked for: Celery passes some of these empty
            raise TypeError(f"{name}= is not supported on a tracked task: {REFUSED[name]}")
        if name not in CANVAS_BOOKKEEPING | WITHOUT_EFFECT | {"countdown", "eta", "expires", "queue", "routing_key",
                                                              "headers", "chain", "chord"}:
            raise TypeError(f"{name}= is not an option a tracked task takes (see docs/celery.md)")

    run_id = None
    if task_id is not None:
        try:
            run_id = uuid.UUID(str(task_id))
        except ValueError:
            raise ValueError(f"task_id={task_id!r} is not a UUID: a run's id is its task id, and is one") from None

    countdown, eta = options.get("countdown"), options.get("eta")
    if countdown is not None and eta is not None:
        raise TypeError("give countdown= or eta=, not both")
    due_at = None
    if countdown is not None or eta is not None:
        due_at = _when(countdown if countdown is not None else eta, name="countdown" if eta is None else "eta", now=now)
        if due_at <= now:
            due_at = None  # due already: published at once, as Celery runs a past eta at once
    expires_at = None if options.get("expires") is None else _when(options["expires"], name="expires", now=now)

    queue = options.get("queue")
    routing_key = options.get("routing_key")
    if queue is not None and not isinstance(queue, str):
        queue = getattr(queue, "name", None)  # a kombu Queue
    if routing_key is not None and queue is not None and routing_key != queue:
        raise TypeError(f"routing_key={routing_key!r} does not lead to queue={queue!r}: each queue is bound by its "
                        "own name")
    queue = queue or routing_key
    if queue is not None and queue not in served_queues:
        raise ValueError(f"queue={queue!r} is served by no worker; the served queues are "
                         f"{', '.join(sorted(served_queues))}")

    headers = dict(options.get("headers") or {})
    unknown = sorted(set(headers) - {RUN_OWNER_HEADER})
    if unknown:
        raise TypeError(f"headers {', '.join(unknown)} mean nothing to a tracked task; it takes "
                        f"{RUN_OWNER_HEADER!r} (the username the run belongs to)")
    continuation = _continuation(chain=options.get("chain"), chord=options.get("chord"), group_id=options.get("group_id"),
                                 group_index=options.get("group_index"), takes_previous=takes_previous)
    return CeleryCall(run_id=run_id, due_at=due_at, expires_at=expires_at, queue=queue,
                      owner_name=headers.get(RUN_OWNER_HEADER), continuation=continuation,
                      canvas_id=_canvas_of(options, run_id=run_id, continuing=bool(continuation)))


def _canvas_of(options: dict, *, run_id: uuid.UUID | None, continuing: bool) -> uuid.UUID | None:
    """The group, chain or chord a call makes its run a member of: Celery's root id, or the group's."""
    for value in (options.get("root_id"), options.get("group_id")):
        try:
            canvas = uuid.UUID(str(value)) if value else None
        except ValueError:
            continue  # not an id Celery made
        if canvas is not None and (canvas != run_id or continuing):  # a task alone is its own root: no canvas
            return canvas
    return None
