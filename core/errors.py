"""The errors every layer shares.

`DomainError` is the base of each app's domain error: the API turns it into a 4xx in the one error
shape, with its `ErrorCode` and the field to change. `TransientError` and `PermanentError` are the
two signals a client of an outside service (or a task body) gives a run's retry policy.
"""

from __future__ import annotations

import contextlib
import enum


class ErrorCode(enum.StrEnum):
    """The machine-readable `code` of an API error; clients switch on these, so they never change."""

    INVALID = "invalid"
    NOT_AUTHENTICATED = "not_authenticated"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    CONFLICT = "conflict"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    UNAVAILABLE = "unavailable"
    ERROR = "error"

    @property
    def http_status(self) -> int:
        return HTTP_STATUS_BY_CODE.get(self, 400)


HTTP_STATUS_BY_CODE = {
    ErrorCode.INVALID: 400, ErrorCode.NOT_AUTHENTICATED: 401, ErrorCode.FORBIDDEN: 403, ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405, ErrorCode.NOT_ACCEPTABLE: 406, ErrorCode.CONFLICT: 409,
    ErrorCode.TOO_LARGE: 413, ErrorCode.UNSUPPORTED_MEDIA_TYPE: 415, ErrorCode.THROTTLED: 429,
    ErrorCode.SERVER_ERROR: 500, ErrorCode.UNAVAILABLE: 503,
}
CODE_BY_STATUS = {status: code for code, status in HTTP_STATUS_BY_CODE.items()}


class DomainError(Exception):
    def __init__(self, message: str, *, code: ErrorCode = ErrorCode.INVALID, field: str | None = None,
                 retry_after: int | None = None, problems: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.code = ErrorCode(code)
        self.field = field
        # Every input at fault and what is wrong with it, when there is more than this one message.
        self.problems = problems or ({field: [message]} if field else {})
        # Seconds after which asking again may succeed (sent as Retry-After with a 429).
        self.retry_after = retry_after

    @property
    def http_status(self) -> int:
        return self.code.http_status

    @property
    def transient(self) -> bool:
        """Whether asking again later may succeed: a service unavailable or a limit reached, not a
        request that is wrong. A task body's retry policy retries only these (jobs.registry)."""
        return self.code in (ErrorCode.UNAVAILABLE, ErrorCode.THROTTLED)


class PermanentError(Exception):
    """Will fail the same way every time (bad input, auth, HTTP 4xx): never retried."""


class TransientError(Exception):
    """May succeed later (timeout, 5xx, 429). `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Problems:
    """What is wrong with one input, gathered across its checks, so a refusal names every problem
    at once instead of one per attempt. A refusal that is not about the input (forbidden, not
    found, unavailable) is not gathered: it goes through at once."""

    def __init__(self, refused: dict[str, list[str]] | None = None):
        """`refused`: inputs a caller refused already (a serializer's field errors), which keep
        their refusal and gain no other."""
        self.by_field: dict[str, list[str]] = {field: list(messages) for field, messages in (refused or {}).items()}
        self._refused = frozenset(self.by_field)

    def add(self, field: str, message: str) -> None:
        if field not in self._refused:
            self.by_field.setdefault(field, []).append(message)

    @contextlib.contextmanager
    def checking(self, field: str):
        """Run a check of `field`; an invalid-input DomainError it raises is kept, not raised."""
        try:
            yield
        except DomainError as exc:
            if exc.code != ErrorCode.INVALID:
                raise
            for name, messages in (exc.problems or {field: [exc.message]}).items():
                for message in messages:
                    self.add(name, message)

    def raise_any(self, error_type: type[DomainError]) -> None:
        if not self.by_field:
            return
        field, messages = next(iter(self.by_field.items()))
        more = sum(len(m) for m in self.by_field.values()) - 1
        summary = f"{field}: {messages[0]}" + (f" (and {more} more)" if more else "")
        raise error_type(summary, field=field, problems=dict(self.by_field))
