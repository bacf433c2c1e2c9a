"""The job platform's domain error, and the two signals the lifecycle raises inside a task body."""

from __future__ import annotations

from core.errors import DomainError


class JobsError(DomainError):
    """A request the job platform refuses (invalid params or schedule, a run in the wrong state)."""


class RunCancelled(Exception):
    """Raised inside a task body by a progress report once a cancel has been requested."""


class LeaseLost(Exception):
    """Raised inside a task body when its attempt no longer holds the run (it was paused or cut off
    and the run was taken over): the attempt stops and writes nothing more, not even an outcome."""
