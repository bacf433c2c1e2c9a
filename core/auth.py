import math

from django.conf import settings
from django.http import HttpResponse
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

from core.throttling import FailedAuthenticationThrottle


class TokenOrBearerAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` as DRF has it, and `Bearer <key>` as most clients send. An
    address that failed too often is refused (429) before its next credential is checked."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme = header.split(" ", 1)[0].lower()
        if scheme == "bearer":
            request.META["HTTP_AUTHORIZATION"] = "Token " + header[7:]
        elif scheme != "token":
            return super().authenticate(request)  # no credential of ours: nothing to guess
        failures = FailedAuthenticationThrottle()
        if (wait := failures.refusal(request)) is not None:
            raise exceptions.Throttled(wait)
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            failures.record(request)
            raise


def login_lockout_response(request, original_response, credentials) -> HttpResponse:
    """django-axes' answer to a locked-out admin login: 429 with Retry-After (the cool-off). The lock
    is this user name from this address only, so the real user, elsewhere, still logs in."""
    seconds = math.ceil(settings.AXES_COOLOFF_TIME * 3600)
    response = HttpResponse(f"Too many failed logins for this user name from this address; try again in "
                            f"{math.ceil(seconds / 60)} minutes.", status=429, content_type="text/plain")
    response["Retry-After"] = str(seconds)
    return response
