from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django_celery_results.admin import TaskResultAdmin
from django_celery_results.models import TaskResult

from jobs.errors import JobsError
from jobs.models import Job, JobRun, RunStatus, TriggeredBy
from jobs.services import definitions, runs
from project.errors import DomainError

STATUS_COLOURS = {
    RunStatus.QUEUED: "#6c757d", RunStatus.STARTED: "#0d6efd", RunStatus.PROGRESS: "#0d6efd",
    RunStatus.RETRY: "#fd7e14", RunStatus.SUCCESS: "#198754", RunStatus.FAILURE: "#dc3545",
    RunStatus.REVOKED: "#343a40",
}


def status_badge(status: str, dead: bool = False):
    label = f"{status} · dead" if dead else status
    return format_html('<span style="background:{};color:#fff;padding:2px 6px;border-radius:3px;'
                       'font-size:11px">{}</span>', STATUS_COLOURS.get(status, "#6c757d"), label)


def progress_bar(percent: float | None, text: str = ""):
    if percent is None:
        return "—"
    return format_html(
        '<div title="{}" style="width:120px;background:#e9ecef;border-radius:3px">'
        '<div style="width:{}%;background:#0d6efd;color:#fff;font-size:10px;padding:1px 3px;'
        'border-radius:3px;white-space:nowrap">{}%</div></div>',
        text, min(percent, 100.0), f"{percent:.0f}",
    )


def apply_each(modeladmin, request, objects, action, *, done: str) -> None:
    """An admin action over a selection: one refusal (a domain error) is reported and the rest go on."""
    count = 0
    for obj in objects:
        try:
            action(obj)
            count += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.WARNING)
    if count:
        modeladmin.message_user(request, f"{done}: {count}.", messages.SUCCESS)


def retry_from_admin(modeladmin, request, run: JobRun) -> JobRun:
    """One retry per run however often it is asked (a double-submitted form included)."""
    new_run, created = runs.run_retry(run=run, triggered_by=TriggeredBy.ADMIN, owner=request.user)
    if not created:
        modeladmin.message_user(request, f"{run}: already retried as run {new_run.id}.", messages.INFO)
    return new_run


@admin.action(description="Retry selected runs (new linked runs)")
def retry_runs(modeladmin, request, queryset):
    apply_each(modeladmin, request, queryset, lambda run: retry_from_admin(modeladmin, request, run),
               done="Runs retried")


@admin.action(description="Cancel selected runs")
def cancel_runs(modeladmin, request, queryset):
    apply_each(modeladmin, request, queryset, lambda run: runs.run_cancel(run=run), done="Runs cancelled")


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("short_id", "badge", "progress", "kind", "queue", "attempts_display", "duration", "owner",
                    "triggered_by", "created_at")
    list_filter = ("status", "kind", "queue", "dead", "triggered_by", "created_at")
    search_fields = ("=id", "correlation_id")
    actions = (retry_runs, cancel_runs)
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in JobRun._meta.fields] + ["progress", "task_result", "children_runs",
                                                             "retry_runs_links"]
    fieldsets = (
        (None, {"fields": ("id", "kind", "status", "dead", "queue", "owner", "triggered_by", "job", "correlation_id")}),
        ("Progress", {"fields": ("progress", "progress_current", "progress_total", "progress_step",
                                 "progress_message", "eta_seconds")}),
        ("Attempts", {"fields": ("attempts", "max_attempts", "attempt_log", "cancel_requested", "time_limit")}),
        ("Input and outcome", {"fields": ("args", "result", "error", "traceback", "task_result")}),
        ("Times", {"fields": ("created_at", "dispatched_at", "started_at", "heartbeat_at", "finished_at")}),
        ("Related", {"fields": ("parent", "retry_of", "children_runs", "retry_runs_links")}),
    )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="id", ordering="id")
    def short_id(self, run):
        return str(run.id)[:8]

    @admin.display(description="status", ordering="status")
    def badge(self, run):
        return status_badge(run.status, run.dead)

    @admin.display(description="progress")
    def progress(self, run):
        text = f"{run.progress_step} {run.progress_current}/{run.progress_total or '?'} {run.progress_message}"
        return progress_bar(run.percent, text)

    @admin.display(description="attempts")
    def attempts_display(self, run):
        return f"{run.attempts}/{run.max_attempts}"

    @admin.display(description="duration")
    def duration(self, run):
        return "—" if run.elapsed_seconds is None else f"{run.elapsed_seconds:.1f} s"

    @admin.display(description="task result")
    def task_result(self, run):
        result = TaskResult.objects.filter(task_id=str(run.id)).first()
        if not result:
            return "—"
        url = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
        return format_html('<a href="{}">{} ({})</a>', url, result.status, result.worker or "?")

    def _links(self, linked):
        return format_html_join(
            ", ", '<a href="{}">{}</a> {}',
            ((reverse("admin:jobs_jobrun_change", args=[r.pk]), str(r.pk)[:8], r.status) for r in linked),
        ) or "—"

    @admin.display(description="children")
    def children_runs(self, run):
        return self._links(run.children.all())

    @admin.display(description="retries")
    def retry_runs_links(self, run):
        return self._links(run.retries.all())


@admin.action(description="Run now")
def run_now(modeladmin, request, queryset):
    for job in queryset:
        run = definitions.job_trigger(job=job, triggered_by=TriggeredBy.ADMIN, owner=request.user)
        modeladmin.message_user(request, f"{job.name}: run {run.id} queued.", messages.SUCCESS)


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "enabled", "schedule_display", "owner", "last_run")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    actions = (run_now,)
    readonly_fields = ("periodic_task", "created_at", "updated_at")
    fields = ("name", "kind", "params", "schedule", "enabled", "owner", "periodic_task", "created_at", "updated_at")

    @admin.display(description="schedule")
    def schedule_display(self, job):
        if not job.schedule:
            return "on demand"
        if "crontab" in job.schedule:
            return f"cron {job.schedule['crontab']} ({job.schedule.get('timezone', 'UTC')})"
        return f"every {job.schedule['every_seconds']} s"

    @admin.display(description="last run")
    def last_run(self, job):
        run = job.runs.order_by("-created_at").first()
        return status_badge(run.status, run.dead) if run else "—"

    def save_model(self, request, obj, form, change):
        # Through the services, so params and schedule are validated and beat is kept in sync.
        data = {key: form.cleaned_data[key] for key in ("name", "params", "schedule", "enabled")}
        try:
            if change:
                definitions.job_update(job=obj, data=data, actor=request.user)
            else:
                created = definitions.job_create(kind=form.cleaned_data["kind"], owner=form.cleaned_data.get("owner"),
                                              **data)
                obj.pk = created.pk
        except JobsError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            raise

    def delete_model(self, request, obj):
        definitions.job_delete(job=obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for job in queryset:
                definitions.job_delete(job=job)


@admin.action(description="Retry selected tracked tasks")
def retry_task_results(modeladmin, request, queryset):
    tracked = JobRun.objects.filter(id__in=list(queryset.values_list("task_id", flat=True)))
    apply_each(modeladmin, request, tracked, lambda run: retry_from_admin(modeladmin, request, run),
               done="Runs retried")


admin.site.unregister(TaskResult)


@admin.register(TaskResult)
class TrackedTaskResultAdmin(TaskResultAdmin):
    actions = (*TaskResultAdmin.actions, retry_task_results) if TaskResultAdmin.actions else (retry_task_results,)
