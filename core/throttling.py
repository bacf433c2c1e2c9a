"""DRF throttles: a rate for anonymous callers, one per user, and tighter ones for the actions that
start expensive work (uploads, chat messages, summaries). Over the rate: 429 with Retry-After.

Rates are read when a request is checked, not at import, so they follow the settings in force.
"""

from __future__ import annotations

from django.core.cache import cache as default_cache
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle


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
