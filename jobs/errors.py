"""The job platform's domain error, and the two signals a task body gives its retry policy."""

from __future__ import annotations

from project.errors import DomainError


class JobsError(DomainError):
    """A request the job platform refuses (invalid params or schedule, a run in the wrong state)."""


class PermanentError(Exception):
    """Will fail the same way every time (bad input, auth, HTTP 4xx): never retried."""


class TransientError(Exception):
    """May succeed later (timeout, 5xx, 429). `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class RunCancelled(Exception):
    """Raised inside a task body by a progress report once a cancel has been requested."""


class LeaseLost(Exception):
    """Raised inside a task body when its attempt no longer holds the run (it was paused or cut off
    and the run was taken over): the attempt stops and writes nothing more, not even an outcome."""
