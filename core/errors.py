"""The errors every layer shares.

`DomainError` is the base of each app's domain error: the API turns it into a 4xx in the one error
shape, with its `ErrorCode` and the field to change. `TransientError` and `PermanentError` are the
two signals a client of an outside service (or a task body) gives a run's retry policy.
"""

from __future__ import annotations

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
                 retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = ErrorCode(code)
        self.field = field
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
