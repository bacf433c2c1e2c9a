"""Client for an OpenAI-compatible LLM server: health probe and chat completions.

Failures are sorted for the run's retry policy: timeouts, connection errors, 429 and 5xx are
TransientError (429/503 carry Retry-After); 400, 401, 403 and 404 are PermanentError.
"""

from __future__ import annotations

import logging
import time

import httpx
from django.conf import settings
from django.core.cache import cache

from jobs.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 10.0
HEALTH_CACHE_KEY = "ai-server:healthy"


def _auth() -> httpx.Auth | None:
    if settings.AI_USERNAME:
        return httpx.BasicAuth(settings.AI_USERNAME, settings.AI_PASSWORD)
    return None


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.AI_API_KEY}"} if settings.AI_API_KEY else {}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def ai_server_health(*, use_cache: bool = True) -> str:
    """'healthy', or raises TransientError. A healthy answer is remembered for AI_HEALTH_TTL seconds."""
    if use_cache and cache.get(HEALTH_CACHE_KEY):
        return "healthy (cached)"
    url = settings.AI_SERVER_URL + settings.AI_HEALTH_PATH
    try:
        response = httpx.get(url, headers=_headers(), auth=_auth(), timeout=HEALTH_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise TransientError(f"AI server health check failed: {type(exc).__name__}: {exc}")
    if response.status_code >= 300:
        raise TransientError(f"AI server health check answered {response.status_code}",
                             retry_after=_retry_after(response))
    if settings.AI_HEALTH_TTL > 0:
        cache.set(HEALTH_CACHE_KEY, True, timeout=settings.AI_HEALTH_TTL)
    return "healthy"


def chat_complete(*, messages: list[dict[str, str]]) -> str:
    """One completion; raises TransientError or PermanentError as the retry policy needs."""
    timeout = httpx.Timeout(settings.AI_TIMEOUT, connect=settings.AI_CONNECT_TIMEOUT)
    started = time.monotonic()
    try:
        response = httpx.post(f"{settings.AI_SERVER_URL}/v1/chat/completions", headers=_headers(), auth=_auth(),
                              json={"model": settings.AI_MODEL, "messages": messages}, timeout=timeout)
    except httpx.TimeoutException as exc:
        cache.delete(HEALTH_CACHE_KEY)
        raise TransientError(f"AI server timed out after {time.monotonic() - started:.1f} s ({type(exc).__name__})")
    except httpx.TransportError as exc:
        cache.delete(HEALTH_CACHE_KEY)
        raise TransientError(f"AI server unreachable: {type(exc).__name__}: {exc}")
    if response.status_code == 429 or response.status_code >= 500:
        cache.delete(HEALTH_CACHE_KEY)
        raise TransientError(f"AI server answered {response.status_code}", retry_after=_retry_after(response))
    if response.status_code >= 400:
        raise PermanentError(f"AI server refused the request: {response.status_code} {response.text[:200]}")
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise TransientError("AI server answered with an unexpected body")
    logger.info("completion received", extra={"seconds": round(time.monotonic() - started, 3),
                                              "chars": len(content or "")})
    return content or ""
