"""Jobs in the admin: edited through a form built for their kind, run now, their latest output;
and beat's periodic tasks, where a job's schedule is read-only (the job is its one source of truth)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_celery_beat.admin import CrontabScheduleAdmin, IntervalScheduleAdmin, PeriodicTaskAdmin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from core.errors import DomainError
from jobs import selectors
from jobs.admin.widgets import LIVE_MEDIA, TIME_FORMAT, link, run_live_cell
from jobs.beat import next_run_at
from jobs.forms import job_admin_form, schedule_summary
from jobs.models import Job, TriggeredBy
from jobs.services import definitions


@admin.action(description="Run now", permissions=["change"])
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
        """What the form had when its kind was changed (job_form.js reloads the page with it in the
        query), so a kind chosen after typing keeps what was typed: the form's own fields only."""
        form_fields = job_admin_form(kind=request.GET.get("kind"), actor=request.user).base_fields
        return {key: values if len(values) > 1 else values[0]
                for key, values in request.GET.lists() if key in form_fields}

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


def _system_names() -> list[str]:
    """Beat's own entries (CELERY_BEAT_SCHEDULE: the watchdog), recovery that needs no operator."""
    return list(settings.CELERY_BEAT_SCHEDULE)


def _protected_tasks():
    """Periodic tasks edited elsewhere: a job's (on the job), or the platform's own (in settings)."""
    return PeriodicTask.objects.filter(Q(job__isnull=False) | Q(name__in=_system_names()))


def _why_protected(task: PeriodicTask | None):
    """Why the admin may not change `task` here (HTML), or None."""
    if task is None:
        return None
    job = Job.objects.filter(periodic_task=task).first()
    if job is not None:
        return format_html("This schedule belongs to the job {}: edit it there.",
                           link(reverse("admin:jobs_job_change", args=[job.pk]), job.name))
    if task.name in _system_names():
        return format_html("{} is the platform's own recovery, set by WATCHDOG_INTERVAL_SECONDS: it cannot be "
                           "switched off, changed or deleted here.", task.name)
    return None


def _skipping(modeladmin, function, protected_ids, *, what: str):
    """`function` (an admin action) applied to the chosen rows outside `protected_ids()`, saying so."""
    def action(inner_modeladmin, request, queryset):
        kept = queryset.filter(pk__in=protected_ids())
        if kept.exists():
            modeladmin.message_user(request, f"{kept.count()} {what} left as they are: they belong to a job (change "
                                             "them on the job) or to the platform's own recovery.", messages.WARNING)
        return function(inner_modeladmin, request, queryset.exclude(pk__in=protected_ids()))

    return action


admin.site.unregister(PeriodicTask)
admin.site.unregister(CrontabSchedule)
admin.site.unregister(IntervalSchedule)
# A job runs on a crontab or an interval (jobs.forms): beat's one-off and sunrise schedules have no
# use here, and their pages only invited schedules no job can have.
admin.site.unregister(ClockedSchedule)
admin.site.unregister(SolarSchedule)


@admin.register(PeriodicTask)
class JobAwarePeriodicTaskAdmin(PeriodicTaskAdmin):
    """A schedule that belongs to a Job is edited on the Job (one source of truth), the watchdog's in
    settings: here both are read-only, with the reason and a link, and beat's bulk actions leave them
    alone. The list says when beat sends each task next."""

    list_display = (*PeriodicTaskAdmin.list_display, "next_run")

    def has_change_permission(self, request, obj=None):
        return _why_protected(obj) is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return _why_protected(obj) is None and super().has_delete_permission(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        reason = _why_protected(PeriodicTask.objects.filter(pk=object_id).first())
        if reason is not None:
            self.message_user(request, reason, messages.INFO)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        def protected():
            return _protected_tasks().values("pk")

        return {name: (_skipping(self, function, protected, what="periodic task(s)"), action_name, description)
                for name, (function, action_name, description) in actions.items()}

    @admin.display(description="next run")
    def next_run(self, task):
        at = next_run_at(task, now=timezone.now())
        return "—" if at is None else timezone.localtime(at).strftime(TIME_FORMAT)


class _ScheduleRowAdmin:
    """Beat's crontab and interval rows: one used by a job's or the platform's periodic task is
    read-only (editing it would move beat while the job still says otherwise) and no bulk delete
    takes it (its tasks would go with it)."""

    schedule_field = ""

    def _protected_rows(self):
        return self.model.objects.filter(periodictask__in=_protected_tasks()).values("pk")

    def _why_protected(self, row):
        if row is None or not self._protected_rows().filter(pk=row.pk).exists():
            return None
        tasks = _protected_tasks().filter(**{self.schedule_field: row})
        jobs = Job.objects.filter(periodic_task__in=tasks).order_by("name")
        links = format_html_join(", ", "{}", ((link(reverse("admin:jobs_job_change", args=[job.pk]), job.name),)
                                              for job in jobs))
        system = [task.name for task in tasks if task.name in _system_names()]
        return format_html("Used by {}{}{}: change the schedule there; this row is kept in step with it.",
                           links or "", " and " if jobs and system else "", ", ".join(system))

    def has_change_permission(self, request, obj=None):
        return self._why_protected(obj) is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._why_protected(obj) is None and super().has_delete_permission(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        reason = self._why_protected(self.model.objects.filter(pk=object_id).first())
        if reason is not None:
            self.message_user(request, reason, messages.INFO)
        return super().change_view(request, object_id, form_url, extra_context)

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            function, action_name, description = actions["delete_selected"]
            actions["delete_selected"] = (_skipping(self, function, self._protected_rows, what="schedule(s)"),
                                          action_name, description)
        return actions


@admin.register(CrontabSchedule)
class JobAwareCrontabScheduleAdmin(_ScheduleRowAdmin, CrontabScheduleAdmin):
    schedule_field = "crontab"


@admin.register(IntervalSchedule)
class JobAwareIntervalScheduleAdmin(_ScheduleRowAdmin, IntervalScheduleAdmin):
    schedule_field = "interval"
