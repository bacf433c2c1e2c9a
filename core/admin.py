"""The admin site as a whole: no app list beside every page, and Axes' login records for
superusers only (security's business, not an operator's), kept read-only as the records they are."""

from __future__ import annotations

from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin

# With the app list and the filters beside it, a run list's columns did not fit a 1280 px screen.
# The admin's index (the dashboard) and the breadcrumbs lead everywhere it did.
admin.site.enable_nav_sidebar = False


class SuperusersOnly:
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return False  # a record of what happened: never edited by hand


for model, model_admin in ((AccessAttempt, AccessAttemptAdmin), (AccessLog, AccessLogAdmin),
                           (AccessFailureLog, AccessFailureLogAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
        # Deleting an attempt is how a locked-out user is let back in: a superuser still may.
        admin.site.register(model, type(model_admin.__name__, (SuperusersOnly, model_admin), {}))
