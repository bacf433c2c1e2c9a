"""The base of each app's domain error: the API turns it into a 4xx with the field to change."""

from __future__ import annotations

HTTP_STATUS_BY_CODE = {"invalid": 400, "forbidden": 403, "not_found": 404, "conflict": 409, "too_large": 413,
                       "throttled": 429, "unavailable": 503}


class DomainError(Exception):
    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        # Seconds after which asking again may succeed (sent as Retry-After with a 429).
        self.retry_after = retry_after

    @property
    def http_status(self) -> int:
        return HTTP_STATUS_BY_CODE.get(self.code, 400)
