"""Every API error in one shape: {"error": {"code", "message", "fields"}}.

`code` is stable and machine-readable ("invalid", "not_found", "throttled", …), `message` is one
sentence for a person, `fields` maps each input field at fault to its messages (empty otherwise).
The schema documents this shape on every operation (core.schema), so clients handle one thing.
"""

from django.core.exceptions import BadRequest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from core.errors import CODE_BY_STATUS, DomainError, ErrorCode
from core.throttling import anonymous_refusal

# A field key DRF uses for errors that belong to no one field.
NON_FIELD_KEYS = {"non_field_errors", "detail"}


def error_body(*, code: ErrorCode, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def error_messages(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [m for item in value for m in error_messages(item)]
    if isinstance(value, dict):
        return [f"{key}: {m}" for key, item in value.items() for m in error_messages(item)]
    return [str(value)]


def _validation_body(detail) -> dict:
    if not isinstance(detail, dict):
        return error_body(code=ErrorCode.INVALID, message=" ".join(error_messages(detail)) or "The request is invalid.")
    fields = {key: error_messages(value) for key, value in detail.items() if key not in NON_FIELD_KEYS}
    general = [m for key in NON_FIELD_KEYS if key in detail for m in error_messages(detail[key])]
    if general:
        message = " ".join(general)
    else:
        first_field, first_messages = next(iter(fields.items()))
        message = f"{first_field}: {first_messages[0]}" if first_messages else "The request is invalid."
    return error_body(code=ErrorCode.INVALID, message=message, fields=fields)


def exception_handler(exc, context):
    """Domain, model and DRF errors become 4xx answers in the one shape, naming what to change."""
    if isinstance(exc, DomainError):
        fields = exc.problems
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return Response(error_body(code=exc.code, message=exc.message, fields=fields), status=exc.http_status,
                        headers=headers)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    if isinstance(exc, exceptions.NotAuthenticated) and (
            wait := anonymous_refusal(context["request"], context.get("view"))) is not None:
        exc = exceptions.Throttled(wait)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = _validation_body(exc.detail)
    else:
        detail = getattr(exc, "detail", None) if not isinstance(exc, Http404) else None
        message = " ".join(error_messages(detail)) if detail else "Not found."
        code = CODE_BY_STATUS.get(response.status_code, ErrorCode.ERROR)
        response.data = error_body(code=code, message=message)
    return response


def is_api_request(request) -> bool:
    return request.path.startswith("/api/")


# How long a client is asked to wait (Retry-After) when the database cannot serve it.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5

_MESSAGE_BY_STATUS = {
    400: "The request is invalid.",
    500: "The server failed; the error is logged.",
    503: "The database is unreachable; try again shortly.",
}


def api_error_response(request, *, status: int, message: str | None = None) -> JsonResponse:
    """An error in the API's shape for `status`, worded for the request when no message is given."""
    if message is None:
        message = f"No API endpoint at {request.path}." if status == 404 else \
            _MESSAGE_BY_STATUS.get(status, "The request could not be answered.")
    return JsonResponse(error_body(code=CODE_BY_STATUS.get(status, ErrorCode.ERROR), message=message), status=status)


def bad_request_response(request, *, message: str) -> HttpResponse:
    if is_api_request(request):
        return api_error_response(request, status=400, message=message)
    from django.views.defaults import bad_request

    return bad_request(request, BadRequest(message))


def database_unavailable_response(request) -> HttpResponse:
    if is_api_request(request):
        response = api_error_response(request, status=503)
    else:
        response = HttpResponse(render_to_string("database_unavailable.html"), status=503)
    response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_SECONDS)
    return response


@csrf_exempt  # it changes nothing: a POST to an unknown address is a 404, not a CSRF failure
def api_not_found(request, exception=None):
    """A URL under /api/ that names nothing answers in the API's shape; elsewhere Django's page stays."""
    if is_api_request(request):
        return api_error_response(request, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def api_server_error(request):
    if is_api_request(request):
        return api_error_response(request, status=500)
    from django.views.defaults import server_error

    return server_error(request)
