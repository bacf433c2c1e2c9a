"""A run's events as Server-Sent Events (`events_url`): its status, progress and log lines as they
change, ending with its final status (core.streams serves it).

Event ids are log-line ids: a `log` event's id is its line's, and every other event carries the id
of the last line before it. Resuming with Last-Event-ID gives the run's state as it is now (status,
progress) and every line after that id: no line twice, none missed. The final status has the id
`end`; resuming after it answers 204, which tells EventSource to stop.
"""

from __future__ import annotations

from core.errors import ErrorCode
from core.streams import Event, StreamRefused, not_found, stream_route
from jobs.lifecycle import progress_event
from jobs.live import message_decode, run_events_key
from jobs.models import FINISHED_STATUSES, JobRun, JobRunLogEntry, RunStatus
from jobs.selectors import FULL_ID, run_visible_to

RUN_ID_PATTERN = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def run_events_path(run_id) -> str:
    return f"/api/runs/{run_id}/events/"


def run_status_event(run: JobRun) -> dict:
    """A `status` event's data, read from the run (what a follower gets when it joins)."""
    data = {"status": run.status, "attempt": run.attempts, "max_attempts": run.max_attempts}
    if run.cancel_requested and not run.is_finished:
        data["cancel_requested"] = True
    if run.status == RunStatus.RETRY and run.due_at:
        data["retry_at"] = run.due_at.isoformat()
    if run.due_at and run.status == RunStatus.QUEUED:
        data["due_at"] = run.due_at.isoformat()
    if run.error:
        data["error"] = run.error
    if run.is_finished:
        data["result"] = run.result
    return data


class RunEventsFeed:
    def __init__(self, run: JobRun):
        self.run_id = run.pk
        self.channels = [run_events_key(run.pk)]
        self.ended = False
        self.last_line = 0
        self.shown: dict[str, dict] = {}

    def opening(self, *, last_event_id: str | None) -> list[Event]:
        if last_event_id is not None:
            line = int(last_event_id)
            if line and not JobRunLogEntry.objects.filter(run_id=self.run_id, id=line).exists():
                raise StreamRefused(400, ErrorCode.INVALID, "Last-Event-ID is not an event of this run's stream.")
            self.last_line = line
        return self.catch_up()

    def catch_up(self) -> list[Event]:
        run = JobRun.objects.get(id=self.run_id)
        lines = list(JobRunLogEntry.objects.filter(run_id=self.run_id, id__gt=self.last_line).order_by("id"))
        events = []
        if not run.is_finished:
            events += self._changed("status", run_status_event(run))
        if run.progress_total or run.progress_current or run.progress_step:
            events += self._changed("progress", progress_event(
                current=run.progress_current, total=run.progress_total, step=run.step_shown,
                message=run.progress_message, eta=None if run.is_finished else run.eta_seconds))
        for line in lines:
            self.last_line = line.id
            events.append(Event("log", {"id": line.id, "level": line.level, "message": line.message,
                                        "at": line.created_at.isoformat()}, id=str(line.id)))
        if run.is_finished:
            events.append(Event("status", run_status_event(run), id="end"))
            self.ended = True
        return events

    def _changed(self, name: str, data: dict) -> list[Event]:
        if self.shown.get(name) == data:
            return []
        self.shown[name] = data
        return [Event(name, data, id=str(self.last_line))]

    def on_message(self, channel: str, payload: bytes) -> list[Event] | None:
        _, event_type, data = message_decode(payload)
        if event_type == "log":
            line = data.get("id")
            if not isinstance(line, int) or line <= self.last_line:
                return []
            self.last_line = line
            return [Event("log", data, id=str(line))]
        if event_type == "progress":
            return self._changed("progress", data)
        if event_type == "status":
            if data.get("status") in FINISHED_STATUSES:
                return None  # the final event comes from the run itself, with its result or error
            return self._changed("status", data)
        return []  # what a body streams (a reply's text) has a stream of its own

    def redis_lost(self) -> list[Event]:
        return [Event("notice", {"live": False, "message": "Live events are unavailable (Redis is not answering); "
                                                           "following the run in the database every second."},
                      id=str(self.last_line))]


@stream_route(rf"/api/runs/(?P<run_id>{RUN_ID_PATTERN})/events/", last_event_id=r"\d{1,19}|end")
def run_events_open(*, user, query: dict, run_id: str) -> RunEventsFeed:
    run = run_visible_to(user=user).filter(id=run_id).first()
    if run is None:
        raise not_found()
    return RunEventsFeed(run)


# A page of runs (the admin's lists) follows them in one stream: a browser holds six connections
# to a host, and one stream per row would take them all.
PAGE_MAX_RUNS = 100


class RunsPageFeed:
    """`status` and `progress` events of several runs, each naming its `run`; the stream ends when
    all of them have. No resume: a reconnect starts from their state now."""

    def __init__(self, run_ids: list):
        self.run_ids = {str(run_id) for run_id in run_ids}
        self.by_channel = {run_events_key(run_id): run_id for run_id in self.run_ids}
        self.channels = list(self.by_channel)
        self.ended = not self.run_ids
        self.open_runs = set(self.run_ids)
        self.to_check: set[str] = set()

    def opening(self, *, last_event_id: str | None) -> list[Event]:
        # The page was drawn a moment ago: only a run that ended since is news to it.
        return self._read(self.run_ids, ended_only=True)

    def _read(self, run_ids, *, ended_only: bool = False) -> list[Event]:
        events = []
        for run in JobRun.objects.filter(id__in=list(run_ids)):
            run_id = str(run.pk)
            if run.is_finished or not ended_only:
                events.append(Event("status", {"run": run_id, **run_status_event(run)}, id="0"))
            if run.is_finished:
                self.open_runs.discard(run_id)
        self.ended = not self.open_runs
        return events

    def on_message(self, channel: str, payload: bytes) -> list[Event] | None:
        run_id = self.by_channel.get(channel)
        _, event_type, data = message_decode(payload)
        if run_id is None or event_type not in ("status", "progress"):
            return []
        if event_type == "status" and data.get("status") in FINISHED_STATUSES:
            self.to_check.add(run_id)
            return None
        return [Event(event_type, {"run": run_id, **data}, id="0")]

    def catch_up(self) -> list[Event]:
        checking, self.to_check = self.to_check or set(self.open_runs), set()
        return self._read(checking & self.open_runs)

    def redis_lost(self) -> list[Event]:
        return [Event("notice", {"live": False, "message": "Live events are unavailable (Redis is not answering); "
                                                           "following the runs in the database every second."},
                      id="0")]


@stream_route(r"/api/runs/events/", last_event_id=r"\d{1,19}|end")
def runs_page_open(*, user, query: dict) -> RunsPageFeed:
    ids = [value.strip().lower() for value in query.get("ids", "").split(",") if value.strip()]
    if len(ids) > PAGE_MAX_RUNS or any(not FULL_ID.fullmatch(value) for value in ids):
        raise StreamRefused(400, ErrorCode.INVALID, f"ids: up to {PAGE_MAX_RUNS} run ids, separated by commas.")
    visible = run_visible_to(user=user).filter(id__in=ids).values_list("id", flat=True)
    return RunsPageFeed(list(visible))
