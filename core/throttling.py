"""DRF throttles: a rate for anonymous callers, one per user, and tighter ones for the actions that
start expensive work (uploads, chat messages, summaries). Over the rate: 429 with Retry-After.

Failed authentication is limited too, per address: DRF checks credentials and permissions before
its throttles, so without this a token could be guessed at full speed and an anonymous caller of a
protected endpoint was never counted. A wrong token counts against `auth_failures` (past it, this
address's credentials are not even checked until its window has room); a request with none
counts against `anon`. Per address, not per account: the owner of a token someone else is guessing
keeps using it.

Rates are read when a request is checked, not at import, so they follow the settings in force.
"""

from __future__ import annotations

from django.core.cache import cache as default_cache
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, SimpleRateThrottle, UserRateThrottle


class _Histories:
    """The throttles' view of the cache: a stored history that is not a list of times (planted, or
    written by another version) reads as empty instead of failing every request of its caller."""

    def get(self, key, default=None):
        history = default_cache.get(key)
        if isinstance(history, list) and all(type(at) in (int, float) for at in history):
            return history
        return []

    def set(self, key, value, timeout=None):
        default_cache.set(key, value, timeout)


class _CurrentRates:
    cache = _Histories()

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AnonThrottle(_CurrentRates, AnonRateThrottle):
    pass


class UserThrottle(_CurrentRates, UserRateThrottle):
    pass


class ActionThrottle(_CurrentRates, ScopedRateThrottle):
    """The scope of what the request does, from the view's `throttle_scopes`, keyed by
    "action:METHOD", "action" or "METHOD" ({"create": "uploads", "messages:POST": "chat"})."""

    def allow_request(self, request, view):
        scopes = getattr(view, "throttle_scopes", {})
        action = getattr(view, "action", None)
        scope = scopes.get(f"{action}:{request.method}") or scopes.get(action) or scopes.get(request.method)
        if scope is None:
            return True
        view.throttle_scope = scope
        return super().allow_request(request, view)


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
    """Count an unauthenticated call of a protected endpoint against `anon`: the seconds to wait
    once over it, else None."""
    throttle = AnonThrottle()
    return None if throttle.allow_request(request, view) else throttle.wait()
