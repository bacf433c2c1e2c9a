"""Client for an OpenAI-compatible LLM server: health probe and chat completions.

Failures are sorted for the run's retry policy: timeouts, connection errors, 429 and 5xx are
TransientError (429/503 carry Retry-After); other 4xx are PermanentError; a key or model
the server rejects (401, 403, or an error that says so, whatever its status: LiteLLM answers a wrong
key with 400 and a missing one with 500) is ServiceMisconfigured, on the health probe as on a
completion, so a reply fails in one attempt naming AI_API_KEY or AI_MODEL. An error names the
status and its reason, never the server's body (which may echo a key or a prompt).
"""

from __future__ import annotations

import json
import logging
import time
from functools import lru_cache

import httpx
from django.conf import settings
from django.core.cache import cache

from core.errors import TransientError
from integrations.http import (
    ERROR_BODY_MAX_BYTES,
    ServiceMisconfigured,
    misconfiguration_check,
    response_check,
    retry_after_seconds,
    status_text,
)

logger = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 10.0
HEALTH_CACHE_KEY = "ai-server:healthy"
# Answers to the probe that say nothing against the key: no such endpoint (404), and asking too soon.
PROBE_PASSING_STATUSES = (404, 408, 429)
_no_health_endpoint_logged: set[str] = set()


def _client() -> httpx.Client:
    return _client_for(settings.AI_SERVER_URL, settings.AI_API_KEY, settings.AI_USERNAME, settings.AI_PASSWORD,
                       settings.AI_TIMEOUT, settings.AI_CONNECT_TIMEOUT)


@lru_cache(maxsize=4)
def _client_for(url: str, api_key: str, username: str, password: str, timeout: float,
                connect_timeout: float) -> httpx.Client:
    """One client per configuration and process: kept-alive connections, one TLS context."""
    auth = httpx.BasicAuth(username, password) if username else None
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=url, auth=auth, headers=headers,
                        timeout=httpx.Timeout(timeout, connect=connect_timeout))



def ai_server_health(*, use_cache: bool = True) -> str:
    """'healthy', or raises TransientError (or ServiceMisconfigured: the key is rejected). A healthy
    answer is remembered for AI_HEALTH_TTL seconds.

    A 404 at AI_HEALTH_PATH means the server has no such endpoint (OpenAI serves no /health):
    that says nothing against it, so replies go ahead. An empty AI_HEALTH_PATH turns the probe off."""
    path = settings.AI_HEALTH_PATH
    if not path:
        return "not probed (AI_HEALTH_PATH is empty)"
    if use_cache and cache.get(HEALTH_CACHE_KEY):
        return "healthy (cached)"
    try:
        response = _client().get(path, timeout=HEALTH_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise TransientError(f"AI server health check failed: {type(exc).__name__}")
    misconfiguration_check(response, body=response.content[:ERROR_BODY_MAX_BYTES], service="AI server",
                           key_setting="AI_API_KEY")
    if 400 <= response.status_code < 500 and response.status_code not in PROBE_PASSING_STATUSES:
        # The probe sends nothing but the key: a refusal of it is a refusal of the key (LiteLLM's
        # proxy answers an unknown key with 400 "No connected db." when it keeps no key database).
        raise ServiceMisconfigured(f"AI server refused the health probe ({status_text(response)}): it sends "
                                   f"nothing but the key, so set AI_API_KEY (or AI_HEALTH_PATH).",
                                   setting="AI_API_KEY")
    if response.status_code == 404:
        if path not in _no_health_endpoint_logged:
            _no_health_endpoint_logged.add(path)
            logger.info("AI server has no health endpoint; going ahead without it", extra={"path": path})
        state = "healthy (no health endpoint)"
    elif response.status_code >= 300:
        raise TransientError(f"AI server health check answered {status_text(response)}",
                             retry_after=retry_after_seconds(response))
    else:
        state = "healthy"
    if settings.AI_HEALTH_TTL > 0:
        cache.set(HEALTH_CACHE_KEY, True, timeout=settings.AI_HEALTH_TTL)
    return state



def chat_complete(*, messages: list[dict[str, str]]) -> str:
    """One completion within AI_TIMEOUT in total (a server that trickles bytes does not extend it);
    raises TransientError or PermanentError as the retry policy needs."""
    started = time.monotonic()
    deadline = started + settings.AI_TIMEOUT
    try:
        with _client().stream("POST", "/v1/chat/completions",
                              json={"model": settings.AI_MODEL, "messages": messages}) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the answer took longer than AI_TIMEOUT")
    except httpx.TimeoutException as exc:
        cache.delete(HEALTH_CACHE_KEY)
        raise TransientError(f"AI server timed out after {time.monotonic() - started:.1f} s ({type(exc).__name__})")
    except httpx.TransportError as exc:
        cache.delete(HEALTH_CACHE_KEY)
        raise TransientError(f"AI server unreachable: {type(exc).__name__}")
    misconfiguration_check(response, body=bytes(body), service="AI server", key_setting="AI_API_KEY",
                           model_setting="AI_MODEL")
    if response.status_code == 429 or response.status_code >= 500:
        cache.delete(HEALTH_CACHE_KEY)
    response_check(response, service="AI server")
    try:
        content = json.loads(bytes(body))["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise TransientError("AI server answered with an unexpected body")
    logger.info("completion received", extra={"seconds": round(time.monotonic() - started, 3),
                                              "chars": len(content or "")})
    return content or ""


def llm_configured() -> bool:
    """The one decision between an LLM and the extractive fallback (replies, summaries, findings):
    an LLM server is used when AI_SERVER_URL names one."""
    return bool(settings.AI_SERVER_URL)


def llm_complete(*, messages: list[dict[str, str]]) -> str:
    """The health gate, then one completion: an unhealthy server is a TransientError before any
    completion is paid for, so the run is retried later without calling it."""
    ai_server_health()
    return chat_complete(messages=messages)
