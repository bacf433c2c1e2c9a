"""`RunContext`: what a tracked body is given, the one contract every body is written against.

A body (`body(ctx, **args)`, registered with `jobs.public.tracked_task`) reports through it and
makes its final writes through it; the worker's implementation (jobs.runner.WorkerRunContext) holds
the run's lease behind each call, and the tests' fake (tests/support/run_context.py) is checked
against this protocol (tests/jobs/test_context.py), so the two cannot drift apart.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class RunContext(Protocol):
    """A body's view of its run: identity, progress, steps kept across attempts, and the final commit.
    Every call that writes raises RunCancelled once a cancel was requested and LeaseLost once the
    run was taken over from this attempt (jobs.errors): a body lets both pass."""

    id: str
    attempt: int
    max_attempts: int
    correlation_id: str
    # Results of steps an earlier attempt completed, by step name (see `step` and `checkpoint`).
    checkpoints: dict

    def progress(self, current: int, total: int | None = None, *, step: str = "", message: str = "") -> None:
        """Report progress (throttled); the ETA is computed from the measured rate."""

    def log(self, message: str, *, level: str = "info") -> None:
        """A line of what the body did, shown with the run in the admin and the API."""

    def stream(self, event: str, data: dict) -> None:
        """Push an event to the run's followers as it happens (a reply's `delta` of text, `reset`),
        kept a while for those who join late; nothing is written to the database, and nothing waits
        on Redis (jobs.live)."""

    def watching_cancel(self, on_cancel: Callable[[], None]) -> AbstractContextManager[None]:
        """While inside, `on_cancel` is called (from another thread) within about
        CANCEL_WATCH_SECONDS of a cancel: a body blocked in a read (an LLM's stream) closes it."""

    def stop(self, write: Callable[[], T]) -> T:
        """The body stopped on a cancel and keeps what it did so far: `write`, and the run ends
        REVOKED, in one transaction, while this attempt holds the run (else LeaseLost)."""

    def step(self, name: str, compute: Callable[[], T]) -> T:
        """The result of a step not to be paid twice (an LLM's answer): kept when `compute`
        returns, and returned as kept to any later attempt without calling `compute`."""

    def checkpoint(self, values: dict[str, Any], *, write: Callable[[], Any] | None = None,
                   current: int | None = None) -> None:
        """Record steps done (`values`) and make their writes (`write`) in one transaction."""

    def slice_over(self, seconds: float) -> bool:
        """True once this attempt has worked `seconds`: long work then calls `yield_turn`."""

    def yield_turn(self, *, reason: str) -> None:
        """Hand the worker back after a slice; the run resumes at its checkpoints. Never returns."""

    @property
    def awaiting_children(self) -> bool:
        """Whether `fan_out` handed the work to child runs (the body then returns at once)."""

    def fan_out(self, create_children: Callable[[], int], *, step: str, message: str) -> int:
        """Create child runs and hand the work over to them, unless a cancel came first."""

    def commit(self, write: Callable[[], T]) -> T:
        """The final writes and SUCCESS in one transaction, unless a cancel came first."""
