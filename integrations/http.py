"""How an HTTP answer from an outside service is sorted for a run's retry policy."""

from __future__ import annotations

import email.utils
import time

import httpx

from core.errors import PermanentError, TransientError


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The server's Retry-After as seconds: a number (fractions accepted) or an HTTP date; None if absent or unreadable."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_text(response: httpx.Response) -> str:
    return f"{response.status_code} {response.reason_phrase}".strip()


def response_check(response: httpx.Response, *, service: str) -> None:
    """429 and 5xx are TransientError (with the server's Retry-After); other 4xx are PermanentError.
    The message names the status and its reason, never the body (which may echo a key or a prompt)."""
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"{service} answered {status_text(response)}", retry_after=retry_after_seconds(response))
    if response.status_code >= 400:
        raise PermanentError(f"{service} refused the request: {status_text(response)}")
