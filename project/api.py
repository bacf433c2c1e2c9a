"""Small helpers every app's API uses."""

from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings


def validated_input(serializer_class, data, **kwargs) -> dict:
    if not isinstance(data, dict) and not hasattr(data, "getlist"):
        raise ValidationError({"detail": ["Expected a JSON object."]})
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def paginated(view, request, queryset, serializer_class):
    paginator = api_settings.DEFAULT_PAGINATION_CLASS()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
