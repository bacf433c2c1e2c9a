from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler as drf_exception_handler

from project.errors import DomainError


def exception_handler(exc, context):
    """Domain and model validation errors become 4xx answers naming what to change, never 500s."""
    if isinstance(exc, DomainError):
        body = {exc.field: [exc.message]} if exc.code == "invalid" and exc.field else {"detail": exc.message}
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return Response(body, status=exc.http_status, headers=headers)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    return drf_exception_handler(exc, context)
