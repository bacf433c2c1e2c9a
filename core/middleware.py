import logging
import re

from django.db import InterfaceError, OperationalError

from core.api_errors import api_error_response, bad_request_response, database_unavailable_response, is_api_request
from core.logging import correlation_id_new, correlation_id_var

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is echoed into logs and headers: accept only a safe, bounded token.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else correlation_id_new()
        request.request_id = request_id
        token = correlation_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            correlation_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class ContentSecurityPolicyMiddleware:
    """Every page may load from this host only (CONTENT_SECURITY_POLICY): the browser itself refuses
    anything else, such as the logo ReDoc's bundle fetches from its vendor's CDN."""

    def __init__(self, get_response):
        from django.conf import settings

        self.get_response = get_response
        self.policy = settings.CONTENT_SECURITY_POLICY

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response


class ApiErrorShapeMiddleware:
    """Under /api/, an error answered by something other than the API (Django's debug or 404 page,
    CommonMiddleware, a 400 from the request parser) is rewritten into the one error shape, with
    its status and Retry-After kept: an API client never has to parse an HTML page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_api_request(request) and request.method not in ("GET", "HEAD", "OPTIONS") and not request.path.endswith("/"):
            # Every API address ends with a slash. CommonMiddleware would redirect, losing the body
            # (or, with DEBUG, raise): say where to send it instead.
            return api_error_response(request, status=404, message=f"No API endpoint at {request.path}; API "
                                                                    f"addresses end with a slash: {request.path}/")
        response = self.get_response(request)
        if response.status_code < 400 or not is_api_request(request) or \
                response.get("Content-Type", "").startswith("application/json"):
            return response
        shaped = api_error_response(request, status=response.status_code)
        if "Retry-After" in response:
            shaped["Retry-After"] = response["Retry-After"]
        return shaped


class NulRejectingMiddleware:
    """A NUL in the path or the query string is a 400 before any view reads it: PostgreSQL refuses
    NUL in text, so it would otherwise reach a filter (the admin's) as a database error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", "") or \
                any("\x00" in key or "\x00" in value for key, values in request.GET.lists() for value in values):
            return bad_request_response(request, message="The address holds a NUL character.")
        return self.get_response(request)


class DatabaseUnavailableMiddleware:
    """A request the database could not serve (down, restarting, refusing connections) answers 503
    with Retry-After, with DEBUG on or off: the error shape under /api/, a plain page elsewhere. The
    broken connection is dropped when the request ends (CONN_HEALTH_CHECKS), so the next request
    reconnects by itself once the database is back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.warning("database unavailable; answered 503",
                       extra={"path": request.path, "cause": type(exception).__name__})
        return database_unavailable_response(request)


# Costly requests one caller may have in flight at once, across every web process (kept in the
# cache; during a Redis outage each process counts its own). Each such request can read a whole
# table (an admin search matches text in every row; a search embeds and ranks): one at a time per
# caller leaves the other core of a small machine to everyone else, where eight at once from one
# caller would take every thread and core.
COSTLY_REQUESTS_PER_CALLER = 1
# How long a slot stays taken if its web process dies mid-request: past gunicorn's own timeout (60 s),
# after which no request of that process can still be running.
COSTLY_SLOT_HOLD_SECONDS = 65


def _is_costly(request) -> bool:
    return request.path == "/api/search/" or (request.path.startswith("/admin/") and bool(request.GET.get("q")))


def _caller(request) -> str:
    """Who is asking, before DRF has authenticated a token: the session's user, else the credentials
    sent (hashed: never kept), else the address."""
    import hashlib

    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    credentials = request.headers.get("Authorization", "")
    if credentials:
        return "credentials:" + hashlib.sha256(credentials.encode()).hexdigest()[:16]
    return f"address:{request.META.get('REMOTE_ADDR', '')}"


class CostlyRequestLimitMiddleware:
    """At most COSTLY_REQUESTS_PER_CALLER costly requests per caller in flight; one more is answered
    429 with Retry-After at once (the API's error shape under /api/), so one caller's slow pages
    never queue another caller's requests behind them. The slots are cache keys shared by every web
    process; this process's own count stands in while the cache is unreachable."""

    def __init__(self, get_response):
        import threading
        from collections import Counter

        self.get_response = get_response
        self.lock = threading.Lock()
        self.in_flight: Counter[str] = Counter()

    def __call__(self, request):
        if not _is_costly(request):
            return self.get_response(request)
        caller = _caller(request)
        with self.lock:
            if self.in_flight[caller] >= COSTLY_REQUESTS_PER_CALLER:
                return self._refused(request)
            self.in_flight[caller] += 1
        try:
            slot = _costly_slot_take(caller)
            if slot is None:
                return self._refused(request)
            try:
                return self.get_response(request)
            finally:
                _costly_slot_release(slot)
        finally:
            with self.lock:
                self.in_flight[caller] -= 1
                if not self.in_flight[caller]:
                    del self.in_flight[caller]

    @staticmethod
    def _refused(request):
        from django.http import HttpResponse

        message = (f"You already have {COSTLY_REQUESTS_PER_CALLER} searches under way; "
                   f"try again when one has answered.")
        response = api_error_response(request, status=429, message=message) if is_api_request(request) else \
            HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = "1"
        return response


def _costly_slot_take(caller: str) -> tuple[str, str] | None:
    """One of the caller's slots in the cache (its key and this request's token), or None when every
    one is taken. `add` sets a key only where none is, atomically in Redis."""
    import uuid

    from django.core.cache import cache

    token = uuid.uuid4().hex
    for number in range(COSTLY_REQUESTS_PER_CALLER):
        key = f"costly:{caller}:{number}"
        if cache.add(key, token, timeout=COSTLY_SLOT_HOLD_SECONDS):
            return key, token
    return None


def _costly_slot_release(slot: tuple[str, str]) -> None:
    from django.core.cache import cache

    key, token = slot
    if cache.get(key) == token:  # not a slot that expired and another request has taken since
        cache.delete(key)
