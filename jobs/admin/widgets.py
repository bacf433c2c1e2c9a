"""What every admin that shows runs uses: the live status cell its page script refreshes, links to
runs, times to the second, and admin actions that report each refusal and go on."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html

from core.errors import DomainError
from core.permissions import may_act_on_others, owner_id_of
from jobs.models import JobRun, RunStatus, TriggeredBy
from jobs.services import steering

STATUS_COLOURS = {
    RunStatus.QUEUED: "#6c757d", RunStatus.STARTED: "#0d6efd", RunStatus.PROGRESS: "#0d6efd",
    RunStatus.RETRY: "#fd7e14", RunStatus.SUCCESS: "#198754", RunStatus.FAILURE: "#dc3545",
    RunStatus.REVOKED: "#343a40",
}
# The script that refreshes every live run cell on a page (lists and run pages alike).
LIVE_MEDIA = forms.Media(js=["jobs/live.js"], css={"all": ["jobs/admin.css"]})
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Characters of an error shown in a list (the whole error is on the object's page).
ERROR_EXCERPT_CHARS = 80


def seconds_shown(value) -> str:
    return timezone.localtime(value).strftime(TIME_FORMAT) if value else "—"


def time_in_a_list(field: str, label: str):
    """A list's time column: the time over the date, narrow enough to leave the row's other columns room."""
    def shown(modeladmin, obj):
        value = getattr(obj, field)
        if value is None:
            return "—"
        local = timezone.localtime(value)
        return lines((local.strftime("%H:%M:%S"), format_html('<span class="run-text">{}</span>',
                                                              local.strftime("%Y-%m-%d"))))

    return admin.display(description=label, ordering=field)(shown)


def time_to_the_second(field: str, label: str):
    """A read-only admin field showing a run's time `field` to the second."""
    return admin.display(description=label, ordering=field)(lambda modeladmin, run: seconds_shown(getattr(run, field)))


def status_badge(status: str, dead: bool = False) -> str:
    return render_to_string("admin/jobs/widgets/status_badge.html", {
        "colour": STATUS_COLOURS.get(status, "#6c757d"), "label": f"{status} · dead" if dead else status})


def progress_bar(percent: float | None, *, ended: str = "") -> str:
    """The bar of a run's progress; the bar of a run that `ended` (its final status) is full, in its
    status's colour, and still says how far the work got."""
    return render_to_string("admin/jobs/widgets/progress_bar.html", {
        "percent": percent, "shown": None if percent is None else f"{percent:.0f}", "ended": ended,
        "width": 100.0 if ended else None if percent is None else min(percent, 100.0)})


def run_field(run: JobRun, name: str, text: str) -> str:
    """A value of a run that the page's script keeps current (RUN_FIELDS), shown beside its live cell."""
    return render_to_string("admin/jobs/widgets/run_field.html", {"run": run, "name": name, "text": text})


def _eta_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"ETA {seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"ETA {seconds} s"


def run_live_cell(run: JobRun | None) -> str:
    """Status, bar, step, message and ETA of a run, in a cell the page's script refreshes while the
    run is unfinished (its JSON endpoint answers with this same HTML)."""
    if run is None:
        return "—"
    retry = _first_retry(run) if run.dead else None
    text = " · ".join(part for part in (run.step_shown, run.progress_message,
                                        "" if run.is_finished else _eta_text(run.eta_seconds)) if part)
    return render_to_string("admin/jobs/widgets/run_live.html", {
        "run": run, "finished": int(run.is_finished), "retry": retry, "text": text,
        "badge": status_badge(run.status, run.dead and retry is None),
        "bar": progress_bar(run.percent, ended=run.status if run.is_finished else ""),
        "heartbeat_timeout": int(settings.RUN_HEARTBEAT_TIMEOUT_SECONDS),
        # A RETRY's next attempt, or a first one put off by Celery's countdown / eta.
        "next_attempt": seconds_shown(run.due_at) if run.due_at and not run.is_finished else "",
    })


def _first_retry(run: JobRun) -> JobRun | None:
    retries = getattr(run, "prefetched_retries", None)  # JobRunQuerySet.with_retries
    if retries is None:
        return run.retries.order_by("created_at").first()
    return retries[0] if retries else None


def run_link(run: JobRun | None) -> str:
    if run is None:
        return "—"
    return render_to_string("admin/jobs/widgets/run_link.html", {"run": run})


def link(url: str, label) -> str:
    return render_to_string("admin/jobs/widgets/link.html", {"url": url, "label": label})


def preformatted(text: str) -> str:
    return render_to_string("admin/jobs/widgets/pre.html", {"text": text})


def lines(items) -> str:
    """One line (a block) per item, each escaped unless it comes rendered."""
    return render_to_string("admin/jobs/widgets/lines.html", {"lines": list(items)})


class SteersRunsAdmin:
    """An admin whose actions start, cancel or fail runs (retries, reprocessing, cancels): they are
    declared `@admin.action(permissions=["steer"])`, and this says who may: whoever may change runs
    (jobs.change_jobrun: an operator, core.permissions), or, for one object, its owner."""

    # Whose permission to change lets staff steer other users' objects here: runs' by default; an
    # admin whose action changes its own objects (reprocessing a document) names their model, as
    # the API asks the same permission for the same action.
    steered_model = JobRun

    def has_steer_permission(self, request, obj=None) -> bool:
        if may_act_on_others(request.user, self.steered_model, "change"):
            return True
        return obj is not None and owner_id_of(obj) == request.user.id


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
    new_run, created = steering.run_retry(run=run, triggered_by=TriggeredBy.ADMIN, owner=request.user)
    if not created:
        modeladmin.message_user(request, f"{run}: already retried as run {new_run.id}.", messages.INFO)
    return new_run


def retry_each(modeladmin, request, runs_chosen) -> None:
    apply_each(modeladmin, request, runs_chosen, lambda run: retry_from_admin(modeladmin, request, run),
               done="Runs retried", log="Retried")
