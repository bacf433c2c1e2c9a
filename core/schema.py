"""The OpenAPI schema as generated clients need it: one-line descriptions, errors documented everywhere.

Every operation documents the error answers it can give, all in the one shape of core.api_errors,
so a generated client parses them instead of raising on an "unexpected status".
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import get_doc
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

ERROR_DESCRIPTIONS = {
    400: "The input is invalid: `fields` names each field at fault.",
    401: "No valid credentials (Token or Bearer).",
    403: "Not allowed for this user.",
    404: "Nothing visible to this user at this address.",
    409: "The object's state does not allow this now.",
    413: "The upload is over the size limit.",
    429: "Too many requests; Retry-After says when to ask again.",
    503: "A service this answer needs is unavailable.",
}
# Any operation can be refused for these; writes can also conflict with the object's state.
COMMON_ERRORS = (400, 401, 403, 404, 429)
WRITE_ERRORS = (409,)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, such as invalid, not_found, throttled.")
    message = serializers.CharField(help_text="One sentence for a person.")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                   help_text="Messages for each input field at fault; empty otherwise.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def error_response(status: int) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[status])


class AutoSchema(SpectacularAutoSchema):
    def get_description(self) -> str:
        # Only the operation's own docstring: class docstrings speak to developers, not API users.
        action = getattr(self.view, getattr(self.view, "action", None) or self.method.lower(), None)
        return get_doc(action) if action is not None else ""

    def get_summary(self) -> str | None:
        return self.get_description().split("\n", 1)[0] or None

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if not self.path.startswith("/api/") or self.path.startswith(("/api/schema", "/api/health")):
            return responses
        statuses = COMMON_ERRORS + (WRITE_ERRORS if self.method in ("POST", "PUT", "PATCH", "DELETE") else ())
        for status in statuses:
            responses.setdefault(str(status), self._get_response_for_code(error_response(status), str(status)))
        return responses


class TokenOrBearerScheme(OpenApiAuthenticationExtension):
    """Both ways core.auth.TokenOrBearerAuthentication reads a key, so a generated client can send
    either: `Authorization: Token <key>` (DRF's) and `Authorization: Bearer <key>`."""

    target_class = "core.auth.TokenOrBearerAuthentication"
    name = ["tokenAuth", "bearerAuth"]
    priority = 1

    def get_security_requirement(self, auto_schema):
        return [{"tokenAuth": []}, {"bearerAuth": []}]  # either one, not both together

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": "Authorization",
             "description": "An API token as `Token <key>` (manage.py create_api_token prints one)."},
            {"type": "http", "scheme": "bearer", "description": "The same API token as `Bearer <key>`."},
        ]
