"""GET /api/health/: each registered check, with a short timeout.

The database check is core's own; the apps register theirs from AppConfig.ready (the job platform
its broker and workers, chat its LLM server, documents a Pinecone index), so this module names no app.

Anyone gets the overall status, from a result at most HEALTH_ANON_CACHE_SECONDS old in this process
(so anonymous polling costs one probe per period, whatever its rate). A caller with a token, or
staff, gets a fresh probe with every check; a failed check names its error type, never a host."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import InterfaceError, OperationalError, connection
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.schema import error_response


class CheckFailed(Exception):
    """A check's own finding, worded here, so safe to show (unlike a library's exception text)."""


@dataclass(frozen=True)
class HealthCheck:
    name: str
    # Returns a detail (a short text or a list) when healthy; raises otherwise.
    probe: Callable[[], object]
    # Without it nothing is accepted ("down"); any other failing check only degrades the service.
    required: bool = False
    # Another check that must be ok first (workers are asked through the broker).
    needs: str | None = None
    # Why the check does not apply here (None when it does): shown as not_configured.
    unconfigured: Callable[[], str | None] | None = None
    # Listed at all only when this says so (a Pinecone index, with VECTOR_STORE=pinecone).
    applies: Callable[[], bool] | None = None


_checks: dict[str, HealthCheck] = {}


def health_check_register(check: HealthCheck) -> None:
    """Add (or replace, by name) a check; report order is registration order."""
    _checks[check.name] = check


def _timed(check: HealthCheck) -> dict:
    started = time.monotonic()
    try:
        detail = check.probe()
        status = "ok"
    except Exception as exc:  # each check reports its own failure instead of failing the endpoint
        # The type says what went wrong; the message may carry host names, ports or credentials.
        detail, status = (str(exc) if isinstance(exc, CheckFailed) else type(exc).__name__), "error"
    return {"status": status, "detail": detail, "ms": round((time.monotonic() - started) * 1000, 1)}


# What PostgreSQL says when it takes no new connection, in our words (its own may name hosts or roles).
_REFUSALS = (
    ("too many connections for role", "the service's role has used all the connections it may hold"),
    ("too many clients", "the server takes no more connections (max_connections reached)"),
    ("remaining connection slots are reserved", "the server takes no more connections but reserved ones"),
    ("password authentication failed", "the server refused the service's password"),
    ("does not exist", "the server has no such database or role"),
    ("connection refused", "the server refused the connection (not listening)"),
    ("timeout", "the server did not answer a new connection in time"),
    ("does not answer", "the server did not answer a new connection in time"),
)


def _database() -> str:
    """The request's own connection answers, and a new one can be made: a server that has used up
    its connections keeps serving the open ones, but nothing that needs a new one (a worker
    restarting, a web process scaling up, the next request after CONN_MAX_AGE) would get in."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    try:
        with connection.wrap_database_errors:  # the driver's errors as Django's
            fresh = connection.get_new_connection(connection.get_connection_params())
    except (OperationalError, InterfaceError) as exc:
        text = str(exc).lower()
        why = next((ours for theirs, ours in _REFUSALS if theirs in text), "the server took no new connection")
        raise CheckFailed(f"no new connection: {why}")
    fresh.close()
    return "reachable, and taking new connections"


def _cache() -> str:
    from django.core.cache import cache

    return cache.ping()


health_check_register(HealthCheck("database", _database, required=True))
# The cache only degrades: without it each process counts its own throttles (core.cache).
health_check_register(HealthCheck("cache", _cache))


def health_report(*, status_only: bool = False) -> tuple[dict, int]:
    """Every check's result and the overall status. With `status_only` (a caller who is shown the
    status alone), the required checks run first and a failed one ends the report: "down" is
    known at once, and the others (a worker ping waits its whole timeout) would only make that
    caller wait longer for it."""
    checks: dict[str, dict] = {}
    required_first = sorted(_checks.values(), key=lambda check: not check.required) if status_only else _checks.values()
    for check in required_first:
        if check.applies is not None and not check.applies():
            continue
        reason = check.unconfigured() if check.unconfigured is not None else None
        if reason:
            checks[check.name] = {"status": "not_configured", "detail": reason, "ms": 0.0}
        elif check.needs and checks.get(check.needs, {}).get("status") != "ok":
            checks[check.name] = {"status": "unknown", "detail": f"{check.needs} unreachable", "ms": 0.0}
        else:
            checks[check.name] = _timed(check)
        if status_only and check.required and checks[check.name]["status"] != "ok":
            break
    # Required checks down: nothing is accepted. Missing workers or an unhealthy AI server delay
    # work but lose nothing, so they only degrade.
    if any(checks[c.name]["status"] != "ok" for c in _checks.values() if c.required and c.name in checks):
        overall = "down"
    elif any(result["status"] in ("error", "unknown") for result in checks.values()):
        overall = "degraded"
    else:
        overall = "ok"
    return {"status": overall, "checks": checks}, (503 if overall == "down" else 200)


def health_report_for(user) -> tuple[dict, int]:
    """Every check for a signed-in caller. Only staff see what names the deployment (the workers'
    hosts: `default@vm`); anyone else gets how many answered instead."""
    body, status = health_report()
    if not user.is_staff:
        for check in body["checks"].values():
            if isinstance(check.get("detail"), (list, tuple)):
                check["detail"] = f"{len(check['detail'])} answered"
    return body, status


class _AnonymousMemo:
    """The last report, per process, for anonymous callers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at = float("-inf")
        self.value: tuple[dict, int] | None = None

    def get(self) -> tuple[dict, int]:
        with self.lock:  # one probe at a time; the others wait for it and share it
            if self.value is None or time.monotonic() - self.at > settings.HEALTH_ANON_CACHE_SECONDS:
                self.value, self.at = health_report(status_only=True), time.monotonic()
            return self.value


_anonymous = _AnonymousMemo()


class HealthView(APIView):
    permission_classes = [AllowAny]

    def perform_authentication(self, request):
        # With the database down no token can be checked: the caller is answered as anyone is
        # (the status only), from a fresh probe, so that they learn at once that it is down.
        try:
            super().perform_authentication(request)
        except (OperationalError, InterfaceError):
            request.user = AnonymousUser()
            request.credentials_unchecked = True

    @extend_schema(description='Whether the service works ("ok" or "degraded"); with credentials, each check.',
                   responses={200: dict, 503: dict, 429: error_response(429)})
    def get(self, request):
        if request.user.is_authenticated:
            body, status = health_report_for(request.user)
            return Response(body, status=status)
        if getattr(request, "credentials_unchecked", False):
            body, status = health_report(status_only=True)
        else:
            body, status = _anonymous.get()
        return Response({"status": body["status"]}, status=status)


health = HealthView.as_view()
