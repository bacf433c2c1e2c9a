"""Runs in the admin: the list whose status cells update themselves, filters for what needs
attention, the run page with its attempts, log, children and retry / cancel / force-fail buttons;
and django-celery-results' task results, retryable as runs."""

from __future__ import annotations

import json
from collections import Counter

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.views.decorators.http import require_POST
from django_celery_results.admin import GroupResultAdmin, TaskResultAdmin
from django_celery_results.models import GroupResult, TaskResult

from core.errors import DomainError
from core.pagination import BoundedCountPaginator
from jobs import selectors
from jobs.admin.widgets import (
    ERROR_EXCERPT_CHARS,
    LIVE_MEDIA,
    SteersRunsAdmin,
    apply_each,
    lines,
    link,
    preformatted,
    retry_each,
    retry_from_admin,
    run_field,
    run_link,
    run_live_cell,
    seconds_shown,
    time_in_a_list,
    time_to_the_second,
)
from jobs.models import FINISHED_STATUSES, JobRun, JobRunLogEntry
from jobs.registry import kinds_all, queues_all
from jobs.services import steering

# At most this many runs are refreshed per poll: one list page.
LIVE_MAX_RUNS = 200
# Arguments that name an object, and the admin page that shows it.
ARG_LINKS = {"document_id": "admin:documents_document_change", "message_id": "admin:chat_message_change",
             "session_id": "admin:chat_chatsession_change", "user_id": "admin:auth_user_change"}
# A run page lists this many of its children; the counts by status cover them all.
CHILDREN_SHOWN = 200
STEPS_KEPT_HELP = ("What earlier attempts finished and saved (checkpoints): an attempt after a retry or a "
                   "takeover starts after these instead of doing them again.")


@admin.action(description="Retry selected runs (new linked runs)", permissions=["steer"])
def retry_runs(modeladmin, request, queryset):
    retry_each(modeladmin, request, queryset)


@admin.action(description="Cancel selected runs", permissions=["steer"])
def cancel_runs(modeladmin, request, queryset):
    apply_each(modeladmin, request, queryset, lambda run: steering.run_cancel(run=run), done="Runs cancelled",
               log="Cancelled")


@admin.action(description="Force-fail selected stalled runs", permissions=["steer"])
def force_fail_runs(modeladmin, request, queryset):
    apply_each(modeladmin, request, queryset, lambda run: steering.run_force_fail(run=run, actor=request.user),
               done="Stalled runs failed", log="Force-failed while stalled")


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


class _RegisteredFilter(admin.SimpleListFilter):
    """A field's choices from the registry, not from a DISTINCT over every run (a scan of them all)."""

    def queryset(self, request, queryset):
        return queryset.filter(**{self.parameter_name: self.value()}) if self.value() else queryset


class KindFilter(_RegisteredFilter):
    title = "kind"
    parameter_name = "kind"

    def lookups(self, request, model_admin):
        return [(spec.kind, spec.kind) for spec in sorted(kinds_all(), key=lambda spec: spec.kind)]


class QueueFilter(_RegisteredFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return [(queue, queue) for queue in queues_all()]


class LogEntryInline(admin.TabularInline):
    model = JobRunLogEntry
    fields = ("time", "attempt", "level", "message")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    verbose_name = "log entry"
    verbose_name_plural = "What the run reported"

    @admin.display(description="time")
    def time(self, entry):
        return seconds_shown(entry.created_at)

    def has_add_permission(self, request, obj=None):
        return False


def _objects_named(runs) -> dict[tuple[str, str], str]:
    """What the runs' arguments name, as their admin pages title them ("notes.txt (3f2a…)"), keyed by
    (argument, id): one query per kind of object, however many runs a table shows."""
    wanted: dict[str, set] = {}
    for run in runs:
        for key, value in (run.args or {}).items():
            if key in ARG_LINKS and value is not None:
                wanted.setdefault(key, set()).add(str(value))
    names = {}
    for key, ids in wanted.items():
        app_label, model_name = ARG_LINKS[key].removeprefix("admin:").removesuffix("_change").split("_", 1)
        try:
            found = apps.get_model(app_label, model_name).objects.in_bulk(ids)
        except (ValueError, TypeError, ValidationError):  # an id that is not one of that model's
            found = {}
        names.update({(key, str(pk)): f"{obj} ({pk})" for pk, obj in found.items()})
    return names


def _attempts_text(run: JobRun) -> str:
    return f"{run.attempts}/{run.max_attempts}"


def _duration_text(run: JobRun) -> str:
    return "—" if run.elapsed_seconds is None else f"{run.elapsed_seconds:.1f} s"


def _live_fields(run: JobRun) -> dict[str, str]:
    """The values beside a run's live cell that change while it runs (a running run's duration grows)."""
    return {"attempts": _attempts_text(run), "duration": _duration_text(run)}


@admin.register(JobRun)
class JobRunAdmin(SteersRunsAdmin, admin.ModelAdmin):
    # Two facts to a column where they belong together (kind and queue, owner and how it started), so
    # every column fits beside the filters on a 1280 px screen.
    list_display = ("short_id", "live", "kind_and_queue", "attempts_and_duration", "error_excerpt",
                    "owner_and_trigger", "created_short")
    list_filter = (AttentionFilter, "status", KindFilter, QueueFilter, "triggered_by", "created_at")
    # Short ids and error text go through get_search_results; these match as Django would.
    search_fields = ("kind", "correlation_id", "error")
    search_help_text = "A run's short id (the first characters of its id), a whole id, words of its error, "\
                       "a kind or a correlation id."
    actions = (retry_runs, cancel_runs, force_fail_runs)
    list_select_related = ("owner",)
    # Large tables: counted as the API counts, and no date hierarchy (its year links are a DISTINCT
    # over every run); the created_at filter narrows by date instead.
    paginator = BoundedCountPaginator
    show_full_result_count = False
    inlines = (LogEntryInline,)
    change_form_template = "admin/jobs/jobrun/change_form.html"
    fieldsets = (
        (None, {"fields": ("id", "kind", "live", "queue", "owner", "triggered_by", "started_by", "job_link",
                           "correlation_id", "worker")}),
        ("Times", {"fields": ("created_at_s", "dispatched_at_s", "started_at_s", "heartbeat_at_s", "due_at_s",
                              "expires_at_s", "finished_at_s", "duration")}),
        ("Input and outcome", {"fields": ("args_links", "result_pretty", "error", "task_result")}),
        ("Attempts", {"fields": ("attempts_display", "attempts_table", "traceback_pre", "cancel_state",
                                 "time_limit", "lease", "steps_kept")}),
        ("Related", {"fields": ("parent_link", "retry_of_link", "children_runs", "canvas_runs", "retry_runs_links")}),
    )
    readonly_fields = ("id", "kind", "live", "queue", "owner", "triggered_by", "started_by", "job_link", "correlation_id",
                       "worker",
                       "created_at_s", "dispatched_at_s", "started_at_s", "heartbeat_at_s", "due_at_s",
                       "expires_at_s", "finished_at_s", "duration", "args_links", "result_pretty", "error", "task_result",
                       "attempts_display", "attempts_table", "traceback_pre", "cancel_state", "time_limit",
                       "lease", "steps_kept", "parent_link", "retry_of_link", "children_runs", "canvas_runs",
                       "retry_runs_links")

    @property
    def media(self):
        return super().media + LIVE_MEDIA

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).with_retries().with_stalled()

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
        """The live cells of the runs a page shows, for its script: {id: {"html", "finished", "fields"}}."""
        if not self.has_view_permission(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        ids = [i for i in request.GET.get("ids", "").split(",") if i][:LIVE_MAX_RUNS]
        found = selectors.runs_by_ids(ids=ids)
        return JsonResponse({"runs": {str(run.pk): {"html": str(run_live_cell(run)), "finished": run.is_finished,
                                                    "status": run.status, "fields": _live_fields(run)}
                                      for run in found}})

    def _act(self, request, object_id, act, *, log: str):
        run = get_object_or_404(JobRun, pk=unquote(object_id))
        if not self.has_steer_permission(request, run):
            # Seeing a run is not steering it: that takes the permission to change runs.
            return JsonResponse({"error": "forbidden: steering runs needs the permission to change them"},
                                status=403)
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
        return self._act(request, object_id, lambda run: steering.run_cancel(run=run) and None, log="Cancelled")

    def force_fail_view(self, request, object_id):
        return self._act(request, object_id, lambda run: steering.run_force_fail(run=run, actor=request.user) and None,
                         log="Force-failed while stalled")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            steers = self.has_steer_permission(request, obj)
            context.update({
                "can_retry": steers and obj.is_retryable and not obj.retries.exists(),
                "can_cancel": steers and not obj.is_finished, "can_force_fail": steers and obj.stalled,
            })
        return super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)

    # --- columns and fields ---

    @admin.display(description="cancel requested")
    def cancel_state(self, run):
        # In words: Django's red "no" icon on a healthy run read as an error.
        if not run.cancel_requested:
            return "No"
        return f"Yes, at {seconds_shown(run.cancel_requested_at)}"

    @admin.display(description="id", ordering="id")
    def short_id(self, run):
        return run.short_id

    @admin.display(description="status and progress", ordering="status")
    def live(self, run):
        return run_live_cell(run)

    @admin.display(description="attempts")
    def attempts_display(self, run):
        return run_field(run, "attempts", _attempts_text(run))

    @admin.display(description="error")
    def error_excerpt(self, run):
        return Truncator(run.error).chars(ERROR_EXCERPT_CHARS)

    @admin.display(description="attempts · time")
    def attempts_and_duration(self, run):
        return lines((self.attempts_display(run), format_html('<span class="run-text">{}</span>',
                                                               self.duration(run))))

    @admin.display(description="kind · queue", ordering="kind")
    def kind_and_queue(self, run):
        # A long kind may break after its app's name ("research.⏎process_document") rather than widen the list.
        kind = format_html_join(mark_safe(".<wbr>"), "{}", ((part,) for part in run.kind.split(".")))
        return lines((kind, format_html('<span class="run-text">{}</span>', run.queue)))

    @admin.display(description="owner · via", ordering="owner")
    def owner_and_trigger(self, run):
        return lines((run.owner or "—", format_html('<span class="run-text">{}</span>', run.get_triggered_by_display())))

    created_short = time_in_a_list("created_at", "accepted")

    @admin.display(description="duration")
    def duration(self, run):
        return run_field(run, "duration", _duration_text(run))

    created_at_s = time_to_the_second("created_at", "accepted")
    # A run is published again on each retry or takeover: this is the latest, after its first start.
    dispatched_at_s = time_to_the_second("dispatched_at", "last published")
    started_at_s = time_to_the_second("started_at", "started")
    heartbeat_at_s = time_to_the_second("heartbeat_at", "last heartbeat")

    @admin.display(description="due")
    def due_at_s(self, run):
        # A RETRY's next attempt, or a first one put off by Celery's countdown / eta.
        return seconds_shown(run.due_at) if run.due_at and not run.is_finished else "—"

    expires_at_s = time_to_the_second("expires_at", "expires")

    finished_at_s = time_to_the_second("finished_at", "finished")

    @admin.display(description="job")
    def job_link(self, run):
        if run.job_id is None:
            return "—"
        return link(reverse("admin:jobs_job_change", args=[run.job_id]), run.job)

    @admin.display(description="args")
    def args_links(self, run, names: dict[tuple[str, str], str] | None = None):
        names = _objects_named([run]) if names is None else names
        rows = []
        for key, value in (run.args or {}).items():
            try:
                shown = link(reverse(ARG_LINKS[key], args=[value]), names.get((key, str(value)), str(value)))
            except (KeyError, NoReverseMatch):
                shown = json.dumps(value)
            rows.append((key, shown))
        return render_to_string("admin/jobs/jobrun/args.html", {"rows": rows}) if rows else "—"

    @admin.display(description="result")
    def result_pretty(self, run):
        if run.result is None:
            return "—"
        return preformatted(json.dumps(run.result, indent=2, ensure_ascii=False))

    @admin.display(description="steps kept for the next attempt")
    def steps_kept(self, run):
        return format_html('{}<div class="run-text">{}</div>', ", ".join(sorted(run.checkpoints)) or "—", STEPS_KEPT_HELP)

    @admin.display(description="traceback")
    def traceback_pre(self, run):
        return preformatted(run.traceback) if run.traceback else "—"

    @admin.display(description="attempt log")
    def attempts_table(self, run):
        if not run.attempt_log:
            return "—"
        rows = ((entry.get("attempt") or "—", entry.get("event", ""), entry.get("error", ""),
                 "—" if entry.get("delay") is None else f"{entry['delay']:.1f} s",
                 (entry.get("at") or "")[:19].replace("T", " ")) for entry in run.attempt_log)
        return render_to_string("admin/jobs/jobrun/attempts.html", {"rows": rows})

    @admin.display(description="task result")
    def task_result(self, run):
        result = TaskResult.objects.filter(task_id=str(run.id)).first()
        if not result:
            return "—"
        url = reverse("admin:django_celery_results_taskresult_change", args=[result.pk])
        return link(url, f"{result.status} ({result.worker or '?'})")

    @admin.display(description="parent")
    def parent_link(self, run):
        return run_link(run.parent)

    @admin.display(description="retry of")
    def retry_of_link(self, run):
        return run_link(run.retry_of)

    @admin.display(description="children")
    def children_runs(self, run):
        """The run tree below this run: each child with what it works on and its live status."""
        children = list(run.children.order_by("created_at").with_retries().with_stalled()[:CHILDREN_SHOWN])
        return self._runs_table(children, counts=selectors.run_children_counts(parent_id=run.pk)) if children else "—"

    @admin.display(description="Celery group, chain or chord")
    def canvas_runs(self, run):
        """The runs of the group, chain or chord this run is a member of, in the order they were recorded."""
        if run.canvas_id is None:
            return "—"
        members = JobRun.objects.filter(canvas_id=run.canvas_id).order_by("created_at")
        shown = list(members.with_retries().with_stalled()[:CHILDREN_SHOWN])
        counts = dict(Counter(members.values_list("status", flat=True)[:CHILDREN_SHOWN + 1]))
        return self._runs_table(shown, counts=counts)

    def _runs_table(self, runs: list[JobRun], *, counts: dict[str, int]) -> str:
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        names = _objects_named(runs)
        rows = [(link(reverse("admin:jobs_jobrun_change", args=[member.pk]), member.short_id), member.kind,
                 self.args_links(member, names), run_field(member, "attempts", _attempts_text(member)), run_live_cell(member))
                for member in runs]
        return render_to_string("admin/jobs/jobrun/children.html", {
            "summary": summary, "rows": rows, "shown": len(runs), "more": sum(counts.values()) > len(runs)})

    @admin.display(description="retries")
    def retry_runs_links(self, run):
        # Each link comes rendered (and escaped) from its template.
        return mark_safe(", ".join(run_link(retry) for retry in run.retries.all())) or "—"


@admin.action(description="Retry selected tracked tasks", permissions=["steer"])
def retry_task_results(modeladmin, request, queryset):
    retry_each(modeladmin, request, JobRun.objects.filter(id__in=list(queryset.values_list("task_id", flat=True))))


class TaskNameFilter(_RegisteredFilter):
    title = "task name"
    parameter_name = "task_name"

    def lookups(self, request, model_admin):
        from celery import current_app

        return [(name, name) for name in sorted(current_app.tasks) if not name.startswith("celery.")]


class TaskStateFilter(_RegisteredFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        from celery import states

        return [(state, state) for state in sorted(states.ALL_STATES)]


admin.site.unregister(TaskResult)


@admin.register(TaskResult)
class TrackedTaskResultAdmin(SteersRunsAdmin, TaskResultAdmin):
    paginator = BoundedCountPaginator
    show_full_result_count = False
    # django-celery-results' filters on status, periodic task, task name and worker each list their
    # values by a DISTINCT over every result, and its date hierarchy its months: states and task
    # names come from Celery instead, the others are dropped, and the date filter narrows by date.
    list_filter = (TaskStateFilter, "date_done", TaskNameFilter)
    date_hierarchy = None
    actions = (*TaskResultAdmin.actions, retry_task_results) if TaskResultAdmin.actions else (retry_task_results,)

    # Results are written by the workers, never by hand.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


admin.site.unregister(GroupResult)


@admin.register(GroupResult)
class ReadOnlyGroupResultAdmin(GroupResultAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
