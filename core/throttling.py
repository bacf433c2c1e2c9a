"""DRF throttles: a rate for anonymous callers, one per user, and tighter ones for the actions that
start expensive work (uploads, chat messages, summaries). Over the rate: 429 with Retry-After.

Failed authentication is limited too, per address: DRF checks credentials and permissions before
its throttles, so without this a token could be guessed at full speed and an anonymous caller of a
protected endpoint was never counted. A wrong token counts against `auth_failures` (past it, this
address's credentials are not even checked until its window has room); a request with none
counts against `anon`. Per address, not per account: the owner of a token someone else is guessing
keeps using it.

Every rate a request is held to (the caller's, `anon` or `user`, and its action's) is checked by
one throttle, RequestThrottle, whose histories are read in one round trip to the cache and written
in one: a request is over the limit if any of them is full, and counts against each only if none is.

Rates are read when a request is checked, not at import, so they follow the settings in force.
"""

from __future__ import annotations

from django.core.cache import cache as default_cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle


def _history(stored) -> list:
    """A stored history that is not a list of times (planted, or written by another version) reads
    as empty instead of failing every request of its caller."""
    if isinstance(stored, list) and all(type(at) in (int, float) for at in stored):
        return stored
    return []


class _Histories:
    """The throttles' view of the cache, one history at a time."""

    def get(self, key, default=None):
        return _history(default_cache.get(key))

    def set(self, key, value, timeout=None):
        default_cache.set(key, value, timeout)


class _CurrentRates:
    cache = _Histories()

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class _Limit(_CurrentRates, SimpleRateThrottle):
    """One rate a request is held to, under DRF's key ("throttle_<scope>_<user id or address>"); its
    history is read and written by RequestThrottle, with the others'."""

    def __init__(self, scope: str, ident) -> None:  # DRF's reads the scope from the class
        self.scope = scope
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.cache_format % {"scope": scope, "ident": ident}


class RequestThrottle(BaseThrottle):
    """`anon` (per address) or `user` (per user), and the scope of what the request does, from the
    view's `throttle_scopes`, keyed by "action:METHOD", "action" or "METHOD" ({"create": "uploads",
    "messages:POST": "chat"})."""

    refused: list[_Limit] = []

    def limits(self, request, view) -> list[_Limit]:
        user = getattr(request, "user", None)
        signed_in = bool(user and user.is_authenticated)
        ident = user.pk if signed_in else self.get_ident(request)
        limits = [_Limit("user" if signed_in else "anon", ident)]
        scopes = getattr(view, "throttle_scopes", {})
        action = getattr(view, "action", None)
        if scope := scopes.get(f"{action}:{request.method}") or scopes.get(action) or scopes.get(request.method):
            limits.append(_Limit(scope, ident))
        return [limit for limit in limits if limit.rate is not None]

    def allow_request(self, request, view) -> bool:
        limits = self.limits(request, view)
        if not limits:
            return True
        now = SimpleRateThrottle.timer()
        stored = default_cache.get_many([limit.key for limit in limits])
        for limit in limits:
            limit.now = now
            limit.history = [at for at in _history(stored.get(limit.key)) if at > now - limit.duration]
        self.refused = [limit for limit in limits if len(limit.history) >= limit.num_requests]
        if self.refused:
            return False
        # Newest first, as DRF keeps them; kept as long as the longest of the windows needs them.
        default_cache.set_many({limit.key: [now, *limit.history] for limit in limits},
                               max(limit.duration for limit in limits))
        return True

    def wait(self) -> float | None:
        waits = [wait for limit in self.refused if (wait := limit.wait()) is not None]
        return max(waits, default=None)


class FailedAuthenticationThrottle(_CurrentRates, SimpleRateThrottle):
    scope = "auth_failures"

    def get_cache_key(self, request, view=None):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def refusal(self, request) -> float | None:
        """Seconds before a credential from this address is checked again, or None if it may be now."""
        if self.rate is None:
            return None
        self.key, self.now = self.get_cache_key(request), self.timer()
        self.history = [at for at in self.cache.get(self.key, []) if at > self.now - self.duration]
        return self.wait() if len(self.history) >= self.num_requests else None

    def record(self, request) -> None:
        """Count one failure of this address (counted while under the rate, as DRF's throttles do)."""
        self.allow_request(request, None)


def anonymous_refusal(request, view) -> float | None:
    """Count an unauthenticated call of a protected endpoint against `anon` (and its action's rate):
    the seconds to wait once over it, else None."""
    throttle = RequestThrottle()
    return None if throttle.allow_request(request, view) else throttle.wait()
