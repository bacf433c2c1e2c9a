"""The job platform as the apps use it: the one module chat, documents and research import from
`jobs` (besides jobs.admin.widgets for their admin pages), so the platform's inside can change
without touching them. Defining a kind, writing its body, starting, retrying, cancelling and
watching runs, and answering "accepted" from an API view."""

from jobs.api import accepted_run, visible_jobs
from jobs.constants import Queue
from jobs.context import RunContext
from jobs.live import (
    LiveEventsUnavailable,
    entry_id_order,
    message_decode,
    run_event_publish,
    run_events_key,
    run_stream_holds,
    run_stream_read,
)
from jobs.models import FINISHED_STATUSES, Job, JobRun, RunStatus, TriggeredBy
from jobs.registry import BLANK_PATTERN, RetryPolicy
from jobs.runner import tracked_task
from jobs.serializers import (
    AcceptedRunSerializer,
    RunOutputSerializer,
    RunProgressSerializer,
    run_progress,
    task_message,
)
from jobs.services.runs import run_enqueue
from jobs.services.steering import run_cancel, run_retry
from jobs.services.usage import run_usage_record
from jobs.streams import run_events_path, run_status_event
from jobs.watch import run_watch


def run_stream(*, run_id, event: str, data: dict) -> None:
    """An event of a run for its followers, kept a while (what `ctx.stream` does, for code that has
    the run but no context: a kind's hooks)."""
    run_event_publish(run_id=run_id, event_type=event, data=data, kept=True)


__all__ = [
    "BLANK_PATTERN", "FINISHED_STATUSES", "AcceptedRunSerializer", "Job", "JobRun", "LiveEventsUnavailable", "Queue",
    "RetryPolicy",
    "RunContext", "RunOutputSerializer", "RunProgressSerializer", "RunStatus", "TriggeredBy", "accepted_run",
    "entry_id_order", "message_decode", "run_cancel", "run_enqueue", "run_events_key", "run_events_path",
    "run_progress", "run_retry", "run_status_event", "run_stream", "run_stream_holds", "run_stream_read",
    "run_usage_record", "run_watch", "task_message", "tracked_task", "visible_jobs",
]
