"""Who may see and act on whose objects, decided by Django's permissions in one place.

Everyone sees and steers their own objects. `is_staff` alone adds nothing to that: a staff user
reads everyone's objects of a model with its `view` permission, acts on others' (cancel, retry,
trigger, edit) with `change`, and deletes others' with `delete`; superusers have every permission.
The API's viewsets share OwnerOrModelPermission, the selectors scope lists with `sees_everyones`,
and the admin declares the same permissions on its actions and buttons. What a staff user does to
another user's object is written to the admin's history (`audit_others`), where the owner can read
who did it.
"""

from __future__ import annotations

from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models
from rest_framework.permissions import SAFE_METHODS, BasePermission


def permission_name(model: type[models.Model], action: str) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def _staff_with(user, model: type[models.Model], action: str) -> bool:
    if not (user and user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or (user.is_staff and user.has_perm(permission_name(model, action)))


def sees_everyones(user, model: type[models.Model]) -> bool:
    """Whether `user` reads every user's objects of `model`, not only their own."""
    return _staff_with(user, model, "view") or _staff_with(user, model, "change")


def may_act_on_others(user, model: type[models.Model], action: str = "change") -> bool:
    """Whether `user` may `action` ("change": act on, "delete") other users' objects of `model`."""
    return _staff_with(user, model, action)


def owner_id_of(obj) -> int | None:
    """Whose an object is: its `owner`, or its session's (a message)."""
    if hasattr(obj, "owner_id"):
        return obj.owner_id
    session = getattr(obj, "session", None)
    return getattr(session, "owner_id", None)


class OwnerOrModelPermission(BasePermission):
    """The one object permission every viewset uses. Reading is the queryset's business (what one
    may not see is a 404). Writing an object is its owner's; another user's needs the model's
    `change` permission (`delete` for DELETE) for the actions the view lists in `others_may`, and
    is refused (403) for the rest: a message is posted, a summary asked for, by the owner alone."""

    message = "You may see this, but not act on it: that needs the model's change (or delete) permission."

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS or owner_id_of(obj) == request.user.id:
            return True
        action = "delete" if request.method == "DELETE" else "change"
        allowed = getattr(view, "others_may", {"destroy"})
        return getattr(view, "action", None) in allowed and may_act_on_others(request.user, type(obj), action)


def audit_others(*, user, obj, message: str, deleted: bool = False) -> None:
    """Record in the admin's history a staff user's action on another user's object (the owner's
    own actions are theirs to know)."""
    if owner_id_of(obj) == user.id:
        return
    LogEntry.objects.log_actions(user_id=user.id, queryset=[obj], action_flag=DELETION if deleted else CHANGE,
                                 change_message=message, single_object=True)


def history_of(obj) -> list[dict]:
    """Who did what to an object, from the admin's history, oldest first."""
    entries = (LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(type(obj)), object_id=str(obj.pk))
               .select_related("user").order_by("action_time"))
    return [{"at": entry.action_time, "by": entry.user.get_username(), "action": entry.get_change_message()}
            for entry in entries]
