"""DRF throttles: a rate for anonymous callers, one per user, and tighter ones for the actions that
start expensive work (uploads, chat messages, summaries). Over the rate: 429 with Retry-After.

Rates are read when a request is checked, not at import, so they follow the settings in force.
"""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, ScopedRateThrottle, UserRateThrottle


class _CurrentRates:
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
