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
