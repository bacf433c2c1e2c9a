"""The groups an operator hands out, kept in step with the permissions they name on every
`migrate` (a post_migrate receiver, core.apps): a permission added to a group here reaches every
deployment at its next migration, and one removed here is taken from the group.

- **Run viewers** read everyone's runs, jobs, documents, chat sessions and digests, in the API and
  the admin, and can act on none of them: support staff.
- **Run operators** also steer everyone's runs and jobs: cancel, retry, force-fail, run now,
  trigger, edit schedules, reprocess documents. Deleting another user's documents, sessions or jobs
  takes the model's delete permission, given to a user or a group of its own.

Permissions are named by their codenames, so this module imports no app (core names none).
"""

from __future__ import annotations

VIEWERS = "Run viewers"
OPERATORS = "Run operators"

_SEES = (
    "jobs.view_jobrun", "jobs.view_jobrunlogentry", "jobs.view_job",
    "documents.view_document", "documents.view_chunk",
    "chat.view_chatsession", "chat.view_message", "chat.view_profilesummary",
    "research.view_digest", "research.view_finding",
    "django_celery_results.view_taskresult",
)
_STEERS = ("jobs.change_jobrun", "jobs.change_job", "documents.change_document")

GROUP_PERMISSIONS: dict[str, tuple[str, ...]] = {VIEWERS: _SEES, OPERATORS: _SEES + _STEERS}


def operator_groups_ensure() -> dict[str, int]:
    """Create or update the groups to hold exactly their permissions; returns how many each holds."""
    from django.contrib.auth.models import Group, Permission

    held = {}
    for name, names in GROUP_PERMISSIONS.items():
        wanted = [tuple(permission.split(".")) for permission in names]
        permissions = [p for p in Permission.objects.select_related("content_type")
                       if (p.content_type.app_label, p.codename) in wanted]
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(permissions)
        held[name] = len(permissions)
    return held


def _after_migrate(sender, **kwargs) -> None:
    from django.apps import apps

    # post_migrate comes once per app, in INSTALLED_APPS order, each app's permissions made in
    # its turn: after the last app's, every permission named above exists.
    if sender.name == list(apps.get_app_configs())[-1].name:
        operator_groups_ensure()
