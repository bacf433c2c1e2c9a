"""Small helpers every app's API uses."""

from rest_framework.exceptions import ValidationError
from rest_framework.settings import api_settings


def validated_input(serializer_class, data, **kwargs) -> dict:
    if not isinstance(data, dict) and not hasattr(data, "getlist"):
        raise ValidationError({"detail": ["Expected a JSON object."]})
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class OwnerScopedMixin:
    """A viewset's queryset from its `<thing>_visible_to(user=…)` selector, so every app scopes objects
    to their owner the same way (another user's object is a 404); empty for the schema generator."""

    model = None
    visible_to = None  # staticmethod(selector)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        return self.visible_to(user=self.request.user)


def paginated(view, request, queryset, serializer_class):
    paginator = api_settings.DEFAULT_PAGINATION_CLASS()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)
