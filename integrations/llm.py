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
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import certifi
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


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One TLS context per process: loading the certificate authorities takes tens of milliseconds,
    which a reply on a connection of its own (ChatStream) would otherwise pay before its first word."""
    return ssl.create_default_context(cafile=certifi.where())


def _client_options() -> dict:
    auth = httpx.BasicAuth(settings.AI_USERNAME, settings.AI_PASSWORD) if settings.AI_USERNAME else None
    headers = {"Authorization": f"Bearer {settings.AI_API_KEY}"} if settings.AI_API_KEY else {}
    return {"base_url": settings.AI_SERVER_URL, "auth": auth, "headers": headers, "verify": _tls(),
            "timeout": httpx.Timeout(settings.AI_TIMEOUT, connect=settings.AI_CONNECT_TIMEOUT)}


@lru_cache(maxsize=4)
def _client_for(url: str, api_key: str, username: str, password: str, timeout: float,
                connect_timeout: float) -> httpx.Client:
    """One client per configuration and process: kept-alive connections, one TLS context."""
    return httpx.Client(**_client_options())



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
    content = _completion_content(bytes(body))
    logger.info("completion received", extra={"seconds": round(time.monotonic() - started, 3),
                                              "chars": len(content or "")})
    return content or ""


@dataclass(frozen=True)
class Completion:
    """A streamed completion: its text, the tokens the server reported (None where it reported
    none: a server without `stream_options`, or a stream stopped before its end), and whether it
    was stopped before the server finished."""

    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    stopped: bool = False


class ChatStream:
    """One completion streamed as the server writes it (`"stream": true`, OpenAI's chunks), with
    the usage the server reports at its end (`stream_options.include_usage`). `stop()`, from any
    thread, ends it at once and closes the connection, so the server stops writing (and billing).

    The same limits and sorting of failures as `chat_complete`: AI_TIMEOUT in all; a stream that
    breaks off, or a chunk that is not JSON, is a TransientError (the run is retried, and the
    reply's followers are told to discard the text so far)."""

    def __init__(self, *, messages: list[dict[str, str]], on_sent: Callable[[], None] | None = None):
        """`on_sent` is called once, as soon as the question has been sent: what the caller has to
        write meanwhile is done while the server thinks, not before it is asked."""
        self.messages = messages
        self._on_sent = on_sent
        self._text = ""
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []

    def stop(self) -> None:
        self._stopped.set()
        for sock in list(self._sockets):
            try:
                # Wakes the read blocked in `run` (closing alone would not), whether the server is
                # still holding its answer or writing it; the server sees the connection close.
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _connected(self, event: str, info: dict) -> None:
        """httpcore's trace: the socket of each connection this stream opens, and the question sent."""
        if event.endswith("send_request_body.complete") and self._on_sent is not None:
            on_sent, self._on_sent = self._on_sent, None
            on_sent()
        elif event.endswith("connect_tcp.complete") or event.endswith("connect_unix_socket.complete"):
            sock = getattr(info.get("return_value"), "get_extra_info", lambda _: None)("socket")
            if sock is not None:
                self._sockets.append(sock)
                if self._stopped.is_set():
                    self.stop()

    def run(self, *, on_delta: Callable[[str], None]) -> Completion:
        started = time.monotonic()
        try:
            # A client of its own (no kept-alive connection shared with other calls): stopping
            # shuts this stream's socket, and no one else's. A connection per reply costs a handshake
            # against replies of seconds.
            with httpx.Client(**_client_options()) as client:
                completion = self._request(client, on_delta=on_delta, started=started, usage=True)
        except (httpx.TimeoutException, httpx.TransportError, httpx.StreamError, RuntimeError, OSError) as exc:
            if self._stopped.is_set():
                return Completion(content=self._text, stopped=True)
            cache.delete(HEALTH_CACHE_KEY)
            if isinstance(exc, httpx.TimeoutException):
                raise TransientError(f"AI server timed out after {time.monotonic() - started:.1f} s "
                                     f"({type(exc).__name__})")
            raise TransientError(f"AI server unreachable: {type(exc).__name__}")
        logger.info("completion streamed", extra={"seconds": round(time.monotonic() - started, 3),
                                                  "chars": len(completion.content), "stopped": completion.stopped})
        return completion

    def _request(self, client: httpx.Client, *, on_delta: Callable[[str], None], started: float,
                 usage: bool) -> Completion:
        self._text = ""
        deadline = started + settings.AI_TIMEOUT
        body = {"model": settings.AI_MODEL, "messages": self.messages, "stream": True}
        if usage:
            body["stream_options"] = {"include_usage": True}
        if self._stopped.is_set():
            return Completion(content="", stopped=True)
        with client.stream("POST", "/v1/chat/completions", json=body, extensions={"trace": self._connected}) as response:
            if response.status_code >= 400:
                error = response.read()[:ERROR_BODY_MAX_BYTES]
                if usage and response.status_code == 400 and b"stream_options" in error:
                    # An older server that knows streaming but not its usage report: ask without it.
                    return self._request(client, on_delta=on_delta, started=started, usage=False)
                misconfiguration_check(response, body=error, service="AI server", key_setting="AI_API_KEY",
                                       model_setting="AI_MODEL")
                if response.status_code == 429 or response.status_code >= 500:
                    cache.delete(HEALTH_CACHE_KEY)
                response_check(response, service="AI server")
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                # A server that ignores `stream` answers the whole completion at once.
                content = _completion_content(response.read())
                on_delta(content)
                self._text = content
                return Completion(content=content)
            prompt_tokens = completion_tokens = None
            finished = False
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("the answer took longer than AI_TIMEOUT")
                if not line.startswith("data:"):
                    continue  # comments, `event:` lines, the blank line between events
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                chunk = _chunk(payload)
                if reported := chunk.get("usage"):
                    prompt_tokens, completion_tokens = _tokens(reported, "prompt_tokens"), _tokens(
                        reported, "completion_tokens")
                for choice in chunk.get("choices") or []:
                    if not isinstance(choice, dict):
                        continue
                    finished = finished or bool(choice.get("finish_reason"))
                    piece = (choice.get("delta") or {}).get("content")
                    if isinstance(piece, str) and piece:
                        self._text += piece
                        on_delta(piece)
            else:
                # The connection ended without `[DONE]`: an answer that says it finished (some servers
                # send no `[DONE]`) is whole; any other broke off, and is asked for again.
                if self._stopped.is_set():
                    return Completion(content=self._text, stopped=True)
                if not finished:
                    raise TransientError("AI server's stream broke off before the answer ended")
            return Completion(content=self._text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                              stopped=self._stopped.is_set())


def _chunk(payload: str) -> dict:
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise TransientError("AI server streamed a chunk that is not JSON")
    if not isinstance(chunk, dict):
        raise TransientError("AI server streamed an unexpected chunk")
    if "error" in chunk:  # an error after the 200 (an upstream failing mid-answer), worded by us
        raise TransientError("AI server reported an error in the middle of its answer")
    return chunk


def _tokens(usage, name: str) -> int | None:
    value = usage.get(name) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and value >= 0 else None


def _completion_content(body: bytes) -> str:
    try:
        content = json.loads(body)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise TransientError("AI server answered with an unexpected body")
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


def llm_stream(*, stream: ChatStream, on_delta: Callable[[str], None]) -> Completion:
    """The health gate, then one streamed completion (ChatStream)."""
    ai_server_health()
    return stream.run(on_delta=on_delta)
