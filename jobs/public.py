"""The job platform as the apps use it: the one module chat, documents and research import from
`jobs` (besides jobs.admin.widgets for their admin pages), so the platform's inside can change
without touching them. Defining a kind, writing its body, starting, retrying, cancelling and
watching runs, and answering "accepted" from an API view."""

from jobs.api import accepted_run, visible_jobs
from jobs.constants import Queue
from jobs.context import RunContext
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
from jobs.watch import run_watch

__all__ = [
    "BLANK_PATTERN", "FINISHED_STATUSES", "AcceptedRunSerializer", "Job", "JobRun", "Queue", "RetryPolicy",
    "RunContext", "RunOutputSerializer", "RunProgressSerializer", "RunStatus", "TriggeredBy", "accepted_run",
    "run_cancel", "run_enqueue", "run_progress", "run_retry", "run_watch", "task_message", "tracked_task",
    "visible_jobs",
]
