"""How an HTTP answer from an outside service is sorted for a run's retry policy.

Three outcomes: a fault that may pass (TransientError: 429, 5xx, a timeout), a request that is
wrong (PermanentError: other 4xx), and this service's own configuration refused
(ServiceMisconfigured: the key or the model), which no retry can mend and whose message names the
setting to fix."""

from __future__ import annotations

import email.utils
import json
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


class ServiceMisconfigured(PermanentError):
    """An outside service refused this deployment's configuration (a key, a model): the run fails at
    once, and the message, worded here and never taken from the server, names the setting to fix."""

    def __init__(self, message: str, *, setting: str):
        super().__init__(message)
        self.setting = setting


# What OpenAI-compatible servers put in an error's type, code or message when the key is at fault
# (OpenAI: 401 invalid_api_key; LiteLLM's proxy: 400 "auth_error" for a wrong key, 500 "No api key
# passed in" for none), and when the model is (OpenAI: 404 model_not_found; vLLM: "The model ... does
# not exist"; Ollama: "model ... not found").
_KEY_WORDS = ("invalid_api_key", "api key", "api_key", "apikey", "auth_error", "authentication",
              "unauthorized", "unauthorised", "invalid token", "bearer token")
_MODEL_WORDS = ("model_not_found", "model not found", "no such model", "invalid model", "unknown model",
                "does not exist", "not found")
# Error bodies are short; what is read of one to find those words, at most.
ERROR_BODY_MAX_BYTES = 16 * 1024


def _error_words(body: bytes) -> str:
    """The error's type, code and message (OpenAI's {"error": {...}}, FastAPI's {"detail": ...}),
    lower-cased, for matching only: never shown or logged."""
    try:
        parsed = json.loads(body[:ERROR_BODY_MAX_BYTES])
    except (ValueError, UnicodeDecodeError):
        return ""
    error = parsed.get("error", parsed.get("detail", "")) if isinstance(parsed, dict) else ""
    if isinstance(error, dict):
        return " ".join(str(error.get(part, "")) for part in ("type", "code", "message")).lower()
    return str(error).lower()


def misconfiguration_check(response: httpx.Response, *, body: bytes, service: str, key_setting: str,
                           model_setting: str | None = None) -> None:
    """Raise ServiceMisconfigured when the answer says the key (401, 403, or an error naming the key
    at any status) or the model (an error naming it) is wrong; otherwise return."""
    status = response.status_code
    if status < 400:
        return
    words = _error_words(body)
    if status in (401, 403) or any(word in words for word in _KEY_WORDS):
        raise ServiceMisconfigured(f"{service} rejected the API key ({status_text(response)}): set {key_setting} "
                                   "to a key it accepts.", setting=key_setting)
    if model_setting and "model" in words and any(word in words for word in _MODEL_WORDS):
        raise ServiceMisconfigured(f"{service} does not serve the configured model ({status_text(response)}): "
                                   f"set {model_setting} to a model it lists.", setting=model_setting)


def response_check(response: httpx.Response, *, service: str) -> None:
    """429 and 5xx are TransientError (with the server's Retry-After); other 4xx are PermanentError.
    The message names the status and its reason, never the body (which may echo a key or a prompt)."""
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"{service} answered {status_text(response)}", retry_after=retry_after_seconds(response))
    if response.status_code >= 400:
        raise PermanentError(f"{service} refused the request: {status_text(response)}")
