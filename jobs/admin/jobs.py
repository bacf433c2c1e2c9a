"""Jobs in the admin: edited through a form built for their kind, run now, their latest output;
and beat's periodic tasks, where a job's schedule is read-only (the job is its one source of truth)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from core.errors import DomainError
from jobs import selectors
from jobs.admin.widgets import LIVE_MEDIA, link, run_live_cell
from jobs.forms import job_admin_form, schedule_summary
from jobs.models import Job, TriggeredBy
from jobs.services import definitions


@admin.action(description="Run now")
def run_now(modeladmin, request, queryset):
    for job in queryset:
        try:
            run = definitions.job_trigger(job=job, triggered_by=TriggeredBy.ADMIN, actor=request.user)
        except DomainError as exc:
            modeladmin.message_user(request, f"{job.name}: {exc.message}", messages.WARNING)
            continue
        modeladmin.log_change(request, job, f"Run now: run {run.id}")
        modeladmin.message_user(request, format_html("{}: {} queued.", job.name, link(
            reverse("admin:jobs_jobrun_change", args=[run.pk]), f"run {run.short_id}")), messages.SUCCESS)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "enabled", "schedule_display", "owner", "last_run")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    actions = (run_now,)
    readonly_fields = ("latest_output", "beat_entry", "created_at", "updated_at")
    change_form_template = "admin/jobs/job/change_form.html"

    @property
    def media(self):
        return super().media + LIVE_MEDIA + forms.Media(js=["jobs/job_form.js"])

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        kind = obj.kind if obj is not None else (request.POST.get("kind") or request.GET.get("kind"))
        return job_admin_form(kind=kind, actor=request.user)

    def get_changeform_initial_data(self, request):
        return {key: value for key, value in super().get_changeform_initial_data(request).items() if key == "kind"}

    @admin.display(description="schedule")
    def schedule_display(self, job):
        return schedule_summary(job.schedule)

    @admin.display(description="last run")
    def last_run(self, job):
        return run_live_cell(job.runs.order_by("-created_at").first())

    @admin.display(description="latest output")
    def latest_output(self, job):
        output = selectors.job_output(job=job)
        if not output:
            return "—"
        url = output.get("admin_url")
        label = output.get("label") or "output"
        return link(url, label) if url else label

    @admin.display(description="beat entry")
    def beat_entry(self, job):
        if not job.periodic_task_id:
            return "— (on demand or disabled)"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[job.periodic_task_id])
        return format_html("{} (kept in step with this job; read-only there)", link(url, job.periodic_task))

    def save_model(self, request, obj, form, change):
        # Through the services, so beat is kept in sync; the form has already run every check.
        data = {key: form.cleaned_data[key] for key in ("name", "params", "schedule", "enabled")}
        if change:
            saved = definitions.job_update(job=obj, data=data, actor=request.user)
        else:
            saved = definitions.job_create(kind=form.cleaned_data["kind"], owner=form.cleaned_data.get("owner"),
                                           actor=request.user, **data)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        definitions.job_delete(job=obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for job in queryset:
                definitions.job_delete(job=job)

    def response_change(self, request, obj):
        if "_run_now" in request.POST:
            run_now(self, request, Job.objects.filter(pk=obj.pk))
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class JobAwarePeriodicTaskAdmin(PeriodicTaskAdmin):
    """A schedule that belongs to a Job is edited on the Job (one source of truth): here it is
    read-only, with a link to its Job, and beat's bulk actions leave it alone."""

    def _job(self, task) -> Job | None:
        return Job.objects.filter(periodic_task=task).first() if task is not None else None

    def has_change_permission(self, request, obj=None):
        return self._job(obj) is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._job(obj) is None and super().has_delete_permission(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        job = self._job(PeriodicTask.objects.filter(pk=object_id).first())
        if job is not None:
            self.message_user(request, format_html("This schedule belongs to the job {}: edit it there.",
                                                   link(reverse("admin:jobs_job_change", args=[job.pk]), job.name)),
                              messages.INFO)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_actions(self, request):
        actions = super().get_actions(request)
        for name, (function, action_name, description) in list(actions.items()):
            if name != "delete_selected":
                actions[name] = (self._skipping_jobs(function), action_name, description)
        actions.pop("delete_selected", None)
        return actions

    def _skipping_jobs(self, function):
        def action(modeladmin, request, queryset):
            owned = queryset.filter(job__isnull=False)
            if owned.exists():
                self.message_user(request, f"{owned.count()} schedule(s) belong to jobs and were left as they are; "
                                           "change them on the job.", messages.WARNING)
            return function(modeladmin, request, queryset.filter(job__isnull=True))

        return action
