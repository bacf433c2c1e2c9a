"""Small helpers every app's API uses."""

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.fields import SkipField
from rest_framework.settings import api_settings

from core.api_errors import NON_FIELD_KEYS, error_messages


def _object_required(data) -> None:
    if not isinstance(data, dict) and not hasattr(data, "getlist"):
        raise ValidationError({"detail": ["Expected a JSON object."]})


def validated_input(serializer_class, data, **kwargs) -> dict:
    _object_required(data)
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def checked_input(serializer_class, data, **kwargs) -> tuple[dict, dict[str, list[str]]]:
    """The fields that passed the serializer, and the problems of those that did not, without
    raising: a service then checks what passed and refuses with every problem at once."""
    _object_required(data)
    serializer = serializer_class(data=data, **kwargs)
    if serializer.is_valid():
        return dict(serializer.validated_data), {}
    refused = {name: error_messages(detail) for name, detail in serializer.errors.items()}
    if set(refused) & set(NON_FIELD_KEYS):
        raise ValidationError(serializer.errors)  # about the whole input: nothing to check field by field
    passed = {}
    for name, field in serializer.fields.items():
        if name in refused or field.read_only:
            continue
        try:
            passed[name] = field.run_validation(field.get_value(data))
        except (ValidationError, SkipField):
            continue
    return passed, refused


class OwnerScopedMixin:
    """A viewset's queryset from its `<thing>_visible_to(user=…)` selector, so every app scopes objects
    to their owner the same way (another user's object is a 404); for the schema generator, none
    of the model its (model) serializer shows."""

    visible_to = None  # staticmethod(selector)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.serializer_class.Meta.model.objects.none()
        return self.visible_to(user=self.request.user)


class OwnedViewSet(OwnerScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                   viewsets.GenericViewSet):
    """List, show and delete the caller's own objects (the owner's documents, chat sessions)."""


def paginated(view, request, queryset, serializer_class):
    paginator = api_settings.DEFAULT_PAGINATION_CLASS()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def described(**descriptions: str):
    """A viewset's actions described for the schema, one sentence each: `@described(list="…", retrieve="…")`."""
    return extend_schema_view(**{action: extend_schema(description=text) for action, text in descriptions.items()})
