"""GET /api/health/: database, broker, workers and the AI server, each checked with a short timeout.

Anyone gets the overall status, from a result at most HEALTH_ANON_CACHE_SECONDS old in this process
(so anonymous polling costs one probe per period, whatever its rate). A caller with a token, or
staff, gets a fresh probe with every check; a failed check names its error type, never a host."""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db import connection
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from project.schema import error_response

BROKER_TIMEOUT_SECONDS = 2.0
# Celery collects ping replies until the timeout, so this is also the endpoint's floor latency.
WORKER_PING_TIMEOUT_SECONDS = 1.0


class CheckFailed(Exception):
    """A check's own finding, worded here, so safe to show (unlike a library's exception text)."""


def _timed(check):
    started = time.monotonic()
    try:
        detail = check()
        status = "ok"
    except Exception as exc:  # each check reports its own failure instead of failing the endpoint
        # The type says what went wrong; the message may carry host names, ports or credentials.
        detail, status = (str(exc) if isinstance(exc, CheckFailed) else type(exc).__name__), "error"
    return {"status": status, "detail": detail, "ms": round((time.monotonic() - started) * 1000, 1)}


def _database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "reachable"


def _broker():
    from project.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
        conn.default_channel.client.ping()
    return "reachable"


def _workers():
    from project.celery import app

    replies = app.control.ping(timeout=WORKER_PING_TIMEOUT_SECONDS) or []
    if not replies:
        # A broadcast can miss workers that are reconnecting their control channel (seen just after start-up):
        # ask once more before reporting none.
        replies = app.control.ping(timeout=WORKER_PING_TIMEOUT_SECONDS) or []
    names = sorted(name for reply in replies for name in reply)
    if not names:
        raise CheckFailed("no worker answered a ping")
    return names


def health_report() -> tuple[dict, int]:
    from chat.llm import ai_server_health

    checks = {"database": _timed(_database), "broker": _timed(_broker)}
    if checks["broker"]["status"] == "ok":
        checks["workers"] = _timed(_workers)
    else:
        checks["workers"] = {"status": "unknown", "detail": "broker unreachable", "ms": 0.0}
    if settings.AI_SERVER_URL:
        checks["ai_server"] = _timed(lambda: ai_server_health(use_cache=False))
    else:
        checks["ai_server"] = {"status": "not_configured", "detail": "AI_SERVER_URL is not set", "ms": 0.0}

    if settings.VECTOR_STORE == "pinecone":
        from documents.vector_store import vector_store

        checks["vector_store"] = _timed(lambda: vector_store().health())
    # Database and broker are required: without them nothing is accepted. Missing workers or
    # an unhealthy AI server delay work but lose nothing, so they only degrade.
    if any(checks[name]["status"] != "ok" for name in ("database", "broker")):
        overall = "down"
    elif (checks["workers"]["status"] != "ok" or checks["ai_server"]["status"] == "error"
          or checks.get("vector_store", {}).get("status") == "error"):
        overall = "degraded"
    else:
        overall = "ok"
    return {"status": overall, "checks": checks}, (503 if overall == "down" else 200)


class _AnonymousMemo:
    """The last report, per process, for anonymous callers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at = float("-inf")
        self.value: tuple[dict, int] | None = None

    def get(self) -> tuple[dict, int]:
        with self.lock:  # one probe at a time; the others wait for it and share it
            if self.value is None or time.monotonic() - self.at > settings.HEALTH_ANON_CACHE_SECONDS:
                self.value, self.at = health_report(), time.monotonic()
            return self.value


_anonymous = _AnonymousMemo()


@extend_schema(description='Whether the service works ("ok" or "degraded"); with credentials, each check.',
               responses={200: dict, 503: dict, 429: error_response(429)})
@api_view(["GET"])
@permission_classes([AllowAny])
def health(request):
    if request.user.is_authenticated:
        body, status = health_report()
        return Response(body, status=status)
    body, status = _anonymous.get()
    return Response({"status": body["status"]}, status=status)
