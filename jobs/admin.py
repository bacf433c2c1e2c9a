"""The operator's console: runs that update themselves, a run page with everything needed to act
(traceback, attempts, log, retry / cancel / force-fail), dead letters that leave once retried, jobs
edited through a real form, and beat's copies of job schedules kept read-only."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.db.models import Q
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask
from django_celery_results.admin import TaskResultAdmin
from django_celery_results.models import TaskResult

from core.errors import DomainError
from jobs import selectors
from jobs.forms import job_admin_form, schedule_summary
from jobs.models import FINISHED_STATUSES, Job, JobRun, JobRunLogEntry, RunStatus, TriggeredBy
from jobs.services import definitions, runs

STATUS_COLOURS = {
    RunStatus.QUEUED: "#6c757d", RunStatus.STARTED: "#0d6efd", RunStatus.PROGRESS: "#0d6efd",
    RunStatus.RETRY: "#fd7e14", RunStatus.SUCCESS: "#198754", RunStatus.FAILURE: "#dc3545",
    RunStatus.REVOKED: "#343a40",
}
# The script that refreshes every live run cell on a page (lists and run pages alike).
LIVE_MEDIA = forms.Media(js=["jobs/live.js"], css={"all": ["jobs/admin.css"]})
# At most this many runs are refreshed per poll: one list page.
LIVE_MAX_RUNS = 200
# Arguments that name an object, and the admin page that shows it.
ARG_LINKS = {"document_id": "admin:documents_document_change", "message_id": "admin:chat_message_change",
             "session_id": "admin:chat_chatsession_change", "user_id": "admin:auth_user_change"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# A run page lists this many of its children; the counts by status cover them all.
CHILDREN_SHOWN = 200


def _seconds(value) -> str:
    return timezone.localtime(value).strftime(TIME_FORMAT) if value else "—"


def status_badge(status: str, dead: bool = False):
    label = f"{status} · dead" if dead else status
    return format_html('<span class="run-badge" style="background:{}">{}</span>', STATUS_COLOURS.get(status, "#6c757d"),
                       label)


def progress_bar(percent: float | None, text: str = ""):
    if percent is None:
        return format_html('<div class="run-bar run-bar-unknown"><div class="run-bar-fill"></div></div>')
    return format_html('<div class="run-bar" role="progressbar" aria-valuenow="{}"><div class="run-bar-fill" '
                       'style="width:{}%">{}%</div></div>', f"{percent:.0f}", min(percent, 100.0), f"{percent:.0f}")


def _eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"ETA {seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"ETA {seconds} s"


def run_live_cell(run: JobRun | None):
    """Status, bar, step, message and ETA of a run, in a cell the page's script refreshes while the
    run is unfinished (its JSON endpoint answers with this same HTML)."""
    if run is None:
        return "—"
    retry = _first_retry(run) if run.dead else None
    flags = []
    if retry is not None:
        url = reverse("admin:jobs_jobrun_change", args=[retry.pk])
        flags.append(format_html('<span class="run-flag">retried → <a href="{}">{}</a></span>', url, retry.short_id))
    if run.stalled:
        flags.append(format_html('<span class="run-flag run-flag-stalled" title="No heartbeat within {} s, or past '
                                 'its time limit">stalled</span>', int(settings.RUN_HEARTBEAT_TIMEOUT_SECONDS)))
    if run.status == RunStatus.RETRY and run.due_at:
        flags.append(format_html('<span class="run-flag">next attempt {}</span>',
                                 _seconds(run.due_at)))
    text = " · ".join(part for part in (run.progress_step, run.progress_message,
                                        "" if run.is_finished else _eta_text(run.eta_seconds)) if part)
    return format_html(
        '<div class="run-live" data-run="{}" data-finished="{}">{} {}{}<div class="run-text">{}</div></div>',
        run.pk, int(run.is_finished), status_badge(run.status, run.dead and retry is None), progress_bar(run.percent),
        format_html_join("", " {}", ((flag,) for flag in flags)), text,
    )


def _first_retry(run: JobRun) -> JobRun | None:
    retries = getattr(run, "prefetched_retries", None)  # JobRunQuerySet.with_retries
    if retries is None:
        return run.retries.order_by("created_at").first()
    return retries[0] if retries else None


def run_link(run: JobRun | None):
    if run is None:
        return "—"
    return format_html('<a href="{}">{}</a> {}', reverse("admin:jobs_jobrun_change", args=[run.pk]), run.short_id,
                       run.status)


def apply_each(modeladmin, request, objects, action, *, done: str, log: str | None = None) -> None:
    """An admin action over a selection: one refusal (a domain error) is reported and the rest go on;
    each object acted on is recorded in the admin log with `log` (or `done`)."""
    count = 0
    for obj in objects:
        try:
            action(obj)
            count += 1
        except DomainError as exc:
            modeladmin.message_user(request, f"{obj}: {exc.message}", messages.WARNING)
            continue
        modeladmin.log_change(request, obj, log or done)
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
               done="Runs retried", log="Retried")


@admin.action(description="Cancel selected runs")
def cancel_runs(modeladmin, request, queryset):
    apply_each(modeladmin, request, queryset, lambda run: runs.run_cancel(run=run), done="Runs cancelled",
               log="Cancelled")


@admin.action(description="Force-fail selected stalled runs")
def force_fail_runs(modeladmin, request, queryset):
    apply_each(modeladmin, request, queryset, lambda run: runs.run_force_fail(run=run, actor=request.user),
               done="Stalled runs failed", log="Force-failed while stalled")


def _time_to_the_second(field: str, label: str):
    """A read-only admin field showing a run's time `field` to the second."""
    return admin.display(description=label, ordering=field)(lambda modeladmin, run: _seconds(getattr(run, field)))


class AttentionFilter(admin.SimpleListFilter):
    title = "attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("dead_letter", "Dead letters (not retried)"), ("retried", "Dead, retried"),
                ("stalled", "Stalled"), ("active", "Waiting or running")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "dead_letter":
            return queryset.dead_letters()
        if value == "retried":
            return queryset.filter(dead=True, retries__isnull=False).distinct()
        if value == "stalled":
            return queryset.stalled()
        if value == "active":
            return queryset.exclude(status__in=FINISHED_STATUSES)
        return queryset


class LogEntryInline(admin.TabularInline):
    model = JobRunLogEntry
    fields = ("time", "level", "message")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name = "log entry"
    verbose_name_plural = "What the run reported"

    @admin.display(description="time")
    def time(self, entry):
        return _seconds(entry.created_at)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("short_id", "live", "kind", "queue", "attempts_display", "error_excerpt", "duration", "owner",
                    "triggered_by", "created_at")
    list_filter = (AttentionFilter, "status", "kind", "queue", "triggered_by", "created_at")
    # Short ids and error text go through get_search_results; these match as Django would.
    search_fields = ("kind", "correlation_id", "error")
    search_help_text = "A run's short id (the first characters of its id), a whole id, words of its error, "\
                       "a kind or a correlation id."
    actions = (retry_runs, cancel_runs, force_fail_runs)
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    inlines = (LogEntryInline,)
    change_form_template = "admin/jobs/jobrun/change_form.html"
    fieldsets = (
        (None, {"fields": ("id", "kind", "live", "queue", "owner", "triggered_by", "job_link", "correlation_id",
                           "worker")}),
        ("Times", {"fields": ("created_at_s", "dispatched_at_s", "started_at_s", "heartbeat_at_s", "due_at_s",
                              "finished_at_s", "duration")}),
        ("Input and outcome", {"fields": ("args_links", "result_pretty", "error", "task_result")}),
        ("Attempts", {"fields": ("attempts_display", "attempts_table", "traceback_pre", "cancel_requested",
                                 "time_limit", "lease", "steps_kept")}),
        ("Related", {"fields": ("parent_link", "retry_of_link", "children_runs", "retry_runs_links")}),
    )
    readonly_fields = ("id", "kind", "live", "queue", "owner", "triggered_by", "job_link", "correlation_id", "worker",
                       "created_at_s", "dispatched_at_s", "started_at_s", "heartbeat_at_s", "due_at_s",
                       "finished_at_s", "duration", "args_links", "result_pretty", "error", "task_result",
                       "attempts_display", "attempts_table", "traceback_pre", "cancel_requested", "time_limit",
                       "lease", "steps_kept", "parent_link", "retry_of_link", "children_runs", "retry_runs_links")

    @property
    def media(self):
        return super().media + LIVE_MEDIA

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).with_retries()

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        by_id = selectors.runs_matching_id(prefix=search_term, runs=queryset)
        if by_id is not None:
            results = queryset.filter(Q(pk__in=results.values("pk")) | Q(pk__in=by_id.values("pk")))
        return results, may_have_duplicates

    # --- the run's own pages: live JSON, and the buttons of the run page ---

    def get_urls(self):
        def view(function):
            return self.admin_site.admin_view(function)

        return [
            path("live/", view(self.live_view), name="jobs_jobrun_live"),
            path("<path:object_id>/retry/", view(require_POST(self.retry_view)), name="jobs_jobrun_retry"),
            path("<path:object_id>/cancel/", view(require_POST(self.cancel_view)), name="jobs_jobrun_cancel"),
            path("<path:object_id>/force-fail/", view(require_POST(self.force_fail_view)),
                 name="jobs_jobrun_force_fail"),
        ] + super().get_urls()

    def live_view(self, request):
        """The live cells of the runs a page shows, for its script: {id: {"html", "finished"}}."""
        if not self.has_view_permission(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        ids = [i for i in request.GET.get("ids", "").split(",") if i][:LIVE_MAX_RUNS]
        found = selectors.runs_by_ids(ids=ids)
        return JsonResponse({"runs": {str(run.pk): {"html": str(run_live_cell(run)), "finished": run.is_finished,
                                                    "status": run.status}
                                      for run in found}})

    def _act(self, request, object_id, act, *, log: str):
        run = get_object_or_404(JobRun, pk=unquote(object_id))
        if not self.has_view_permission(request, run):
            return JsonResponse({"error": "forbidden"}, status=403)
        try:
            target = act(run) or run
        except DomainError as exc:
            self.message_user(request, exc.message, messages.WARNING)
            target = run
        else:
            self.log_change(request, run, log)
            self.message_user(request, f"{log}: run {run.short_id}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:jobs_jobrun_change", args=[target.pk]))

    def retry_view(self, request, object_id):
        return self._act(request, object_id, lambda run: retry_from_admin(self, request, run), log="Retried")

    def cancel_view(self, request, object_id):
        return self._act(request, object_id, lambda run: runs.run_cancel(run=run) and None, log="Cancelled")

    def force_fail_view(self, request, object_id):
        return self._act(request, object_id, lambda run: runs.run_force_fail(run=run, actor=request.user) and None,
                         log="Force-failed while stalled")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update({
                "can_retry": obj.is_retryable and not obj.retries.exists(),
                "can_cancel": not obj.is_finished, "can_force_fail": obj.stalled,
            })
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    # --- columns and fields ---

    @admin.display(description="id", ordering="id")
    def short_id(self, run):
        return run.short_id

    @admin.display(description="status and progress", ordering="status")
    def live(self, run):
        return run_live_cell(run)

    @admin.display(description="attempts")
    def attempts_display(self, run):
        return f"{run.attempts}/{run.max_attempts}"

    @admin.display(description="error")
    def error_excerpt(self, run):
        return (run.error[:80] + "…") if len(run.error) > 80 else (run.error or "")

    @admin.display(description="duration")
    def duration(self, run):
        return "—" if run.elapsed_seconds is None else f"{run.elapsed_seconds:.1f} s"

    created_at_s = _time_to_the_second("created_at", "created")
    dispatched_at_s = _time_to_the_second("dispatched_at", "published")
    started_at_s = _time_to_the_second("started_at", "started")
    heartbeat_at_s = _time_to_the_second("heartbeat_at", "last heartbeat")

    @admin.display(description="next attempt")
    def due_at_s(self, run):
        return _seconds(run.due_at) if run.status == RunStatus.RETRY else "—"

    finished_at_s = _time_to_the_second("finished_at", "finished")

    @admin.display(description="job")
    def job_link(self, run):
        if run.job_id is None:
            return "—"
        return format_html('<a href="{}">{}</a>', reverse("admin:jobs_job_change", args=[run.job_id]), run.job)

    @admin.display(description="args")
    def args_links(self, run):
        rows = []
        for key, value in (run.args or {}).items():
            try:
                shown = format_html('<a href="{}">{}</a>', reverse(ARG_LINKS[key], args=[value]), value)
            except (KeyError, NoReverseMatch):
                shown = json.dumps(value)
            rows.append((key, shown))
        return format_html('<table class="run-table">{}</table>',
                           format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)) if rows else "—"

    @admin.display(description="result")
    def result_pretty(self, run):
        if run.result is None:
            return "—"
        return format_html('<pre class="run-pre">{}</pre>', json.dumps(run.result, indent=2, ensure_ascii=False))

    @admin.display(description="steps kept for the next attempt")
    def steps_kept(self, run):
        return ", ".join(sorted(run.checkpoints)) if run.checkpoints else "—"

    @admin.display(description="traceback")
    def traceback_pre(self, run):
        return format_html('<pre class="run-pre">{}</pre>', run.traceback) if run.traceback else "—"

    @admin.display(description="attempt log")
    def attempts_table(self, run):
        if not run.attempt_log:
            return "—"
        rows = ((entry.get("attempt") or "—", entry.get("event", ""), entry.get("error", ""),
                 "—" if entry.get("delay") is None else f"{entry['delay']:.1f} s",
                 (entry.get("at") or "")[:19].replace("T", " ")) for entry in run.attempt_log)
        return format_html(
            '<table class="run-table"><tr><th>attempt</th><th>event</th><th>error</th><th>next in</th><th>time</th>'
            '</tr>{}</table>',
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows))

    @admin.display(description="task result")
    def task_result(self, run):
        result = TaskResult.objects.filter(task_id=str(run.id)).first()
        if not result:
            return "—"
        url = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
        return format_html('<a href="{}">{} ({})</a>', url, result.status, result.worker or "?")

    @admin.display(description="parent")
    def parent_link(self, run):
        return run_link(run.parent)

    @admin.display(description="retry of")
    def retry_of_link(self, run):
        return run_link(run.retry_of)

    @admin.display(description="children")
    def children_runs(self, run):
        """The run tree below this run: each child with what it works on and its live status."""
        children = list(run.children.order_by("created_at").with_retries()[:CHILDREN_SHOWN])
        if not children:
            return "—"
        counts = selectors.run_children_counts(parent_id=run.pk)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        rows = ((format_html('<a href="{}">{}</a>', reverse("admin:jobs_jobrun_change", args=[child.pk]),
                             child.short_id), child.kind, self.args_links(child),
                 f"{child.attempts}/{child.max_attempts}", run_live_cell(child)) for child in children)
        more = sum(counts.values()) - len(children)
        return format_html(
            '<p>{}{}</p><table class="run-table run-tree"><tr><th>run</th><th>kind</th><th>args</th><th>attempts</th>'
            '<th>status</th></tr>{}</table>', summary, f" (the first {len(children)} shown)" if more > 0 else "",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows))

    @admin.display(description="retries")
    def retry_runs_links(self, run):
        return format_html_join(", ", "{}", ((run_link(r),) for r in run.retries.all())) or "—"


@admin.action(description="Run now")
def run_now(modeladmin, request, queryset):
    for job in queryset:
        try:
            run = definitions.job_trigger(job=job, triggered_by=TriggeredBy.ADMIN, owner=request.user)
        except DomainError as exc:
            modeladmin.message_user(request, f"{job.name}: {exc.message}", messages.WARNING)
            continue
        modeladmin.log_change(request, job, f"Run now: run {run.id}")
        modeladmin.message_user(request, format_html('{}: <a href="{}">run {}</a> queued.', job.name,
                                                     reverse("admin:jobs_jobrun_change", args=[run.pk]), run.short_id),
                                messages.SUCCESS)


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
        link = output.get("admin_url")
        label = output.get("label") or "output"
        return format_html('<a href="{}">{}</a>', link, label) if link else label

    @admin.display(description="beat entry")
    def beat_entry(self, job):
        if not job.periodic_task_id:
            return "— (on demand or disabled)"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[job.periodic_task_id])
        return format_html('<a href="{}">{}</a> (kept in step with this job; read-only there)', url,
                           job.periodic_task)

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


@admin.action(description="Retry selected tracked tasks")
def retry_task_results(modeladmin, request, queryset):
    tracked = JobRun.objects.filter(id__in=list(queryset.values_list("task_id", flat=True)))
    apply_each(modeladmin, request, tracked, lambda run: retry_from_admin(modeladmin, request, run),
               done="Runs retried", log="Retried")


admin.site.unregister(TaskResult)


@admin.register(TaskResult)
class TrackedTaskResultAdmin(TaskResultAdmin):
    actions = (*TaskResultAdmin.actions, retry_task_results) if TaskResultAdmin.actions else (retry_task_results,)


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
            self.message_user(request, format_html(
                'This schedule belongs to the job <a href="{}">{}</a>: edit it there.',
                reverse("admin:jobs_job_change", args=[job.pk]), job.name), messages.INFO)
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
