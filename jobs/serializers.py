from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.permissions import history_of
from jobs.constants import JOB_NAME_MAX_LENGTH, KIND_MAX_LENGTH
from jobs.models import Job, JobRun, JobRunLogEntry, RunStatus
from jobs.selectors import job_output, run_children_counts
from jobs.streams import run_events_path


def run_progress(run: JobRun) -> dict:
    """A run's progress as every answer shows it (RunProgressSerializer)."""
    return {"current": run.progress_current, "total": run.progress_total, "percent": run.percent,
            "step": run.progress_step, "message": run.progress_message}


class RunProgressSerializer(serializers.Serializer):
    current = serializers.IntegerField()
    total = serializers.IntegerField(allow_null=True)
    percent = serializers.FloatField(allow_null=True)
    step = serializers.CharField()
    message = serializers.CharField()


class ChildrenCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_status = serializers.DictField(child=serializers.IntegerField(), help_text="QUEUED, PROGRESS, SUCCESS, …")


class AttemptSerializer(serializers.Serializer):
    attempt = serializers.IntegerField(allow_null=True)
    event = serializers.CharField(help_text="failed, timeout, cancelled, lost, …")
    error = serializers.CharField(allow_blank=True)
    delay = serializers.FloatField(allow_null=True, help_text="Seconds until the next attempt, when one was planned.")
    at = serializers.DateTimeField(help_text="When the attempt ended.")


class RunOutputSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    elapsed_seconds = serializers.FloatField(read_only=True, allow_null=True)
    eta_seconds = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    attempt_log = AttemptSerializer(many=True, read_only=True)
    stalled = serializers.BooleanField(read_only=True,
                                       help_text="Running, but its worker has not reported for longer than allowed.")
    children = serializers.SerializerMethodField(
        help_text="Counts of the run's child runs by status (a fan-out); null when it has none. "
                  "List them with /api/runs/?parent=<id>.")
    events_url = serializers.SerializerMethodField(
        help_text="Server-Sent Events of the run's status, progress and log lines as they change, ending with its "
                  "final status (docs/api.md, Live events).")

    class Meta:
        model = JobRun
        fields = [
            "id", "kind", "status", "queue", "attempts", "max_attempts", "progress", "elapsed_seconds",
            "eta_seconds", "created_at", "started_at", "finished_at", "due_at", "expires_at", "error", "result", "dead",
            "canvas_id",
            "cancel_requested", "retry_of", "parent", "job", "correlation_id", "triggered_by", "args",
            "attempt_log", "stalled", "awaiting_children", "children", "worker", "lease", "started_by",
            "prompt_tokens", "completion_tokens", "events_url",
        ]

    @extend_schema_field(RunProgressSerializer)
    def get_progress(self, run: JobRun) -> dict:
        return run_progress(run)

    def get_eta_seconds(self, run: JobRun) -> float | None:
        return None if run.is_finished else run.eta_seconds

    def get_error(self, run: JobRun) -> str | None:
        return run.error or None

    def get_events_url(self, run: JobRun) -> str:
        return run_events_path(run.pk)

    @extend_schema_field(ChildrenCountsSerializer(allow_null=True))
    def get_children(self, run: JobRun) -> dict | None:
        # Annotated by JobRunQuerySet.with_children_counts on lists; asked for a single run otherwise,
        # unless it never started (a parent makes its children as it runs): a 202's run.
        if hasattr(run, "children_counts"):
            counts = run.children_counts
        else:
            counts = run_children_counts(parent_id=run.pk) if run.attempts else {}
        if not counts:
            return None
        return {"total": sum(counts.values()), "by_status": counts}



class RunActionSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    by = serializers.CharField(help_text="The user name of who acted.")
    action = serializers.CharField(help_text="What they did, and why where a reason was given.")


class RunDetailSerializer(RunOutputSerializer):
    history = serializers.SerializerMethodField(
        help_text="What users other than its owner did to the run (cancel, retry, force-fail), from the admin's "
                  "history, oldest first.")

    class Meta(RunOutputSerializer.Meta):
        fields = [*RunOutputSerializer.Meta.fields, "history"]

    @extend_schema_field(RunActionSerializer(many=True))
    def get_history(self, run: JobRun) -> list[dict]:
        return history_of(run)

class JobOutputSerializer(serializers.ModelSerializer):
    latest_output = serializers.SerializerMethodField(
        help_text="What the job last produced, as its kind describes it (a research digest: its id, url and "
                  "whether it is partial); null before a first output or for kinds that produce none.")

    class Meta:
        model = Job
        fields = ["id", "name", "kind", "params", "schedule", "enabled", "owner", "created_at", "updated_at",
                  "latest_output"]

    @extend_schema_field({"type": "object", "additionalProperties": True, "nullable": True})
    def get_latest_output(self, job: Job) -> dict | None:
        output = job_output(job=job)
        return None if output is None else {k: v for k, v in output.items() if k != "admin_url"}


class JobInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=JOB_NAME_MAX_LENGTH)
    kind = serializers.CharField(max_length=KIND_MAX_LENGTH)
    params = serializers.JSONField(required=False, default=dict)
    schedule = serializers.JSONField(required=False, allow_null=True, default=None)
    enabled = serializers.BooleanField(required=False, default=True)


class JobPatchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=JOB_NAME_MAX_LENGTH, required=False)
    params = serializers.JSONField(required=False)
    schedule = serializers.JSONField(required=False, allow_null=True)
    enabled = serializers.BooleanField(required=False)


class TriggerInputSerializer(serializers.Serializer):
    params = serializers.JSONField(required=False, default=dict)


class RunLogEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = JobRunLogEntry
        fields = ["id", "attempt", "level", "message", "created_at"]


class LastHourSerializer(serializers.Serializer):
    finished = serializers.IntegerField()
    failed = serializers.IntegerField()
    throughput_per_minute = serializers.FloatField()
    failure_rate = serializers.FloatField()


class TokenUsageSerializer(serializers.Serializer):
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    answers_with_counts = serializers.IntegerField(help_text="LLM answers whose server reported their tokens.")
    answers_without_counts = serializers.IntegerField(
        help_text="LLM answers whose server reported no tokens: not counted above (never estimated).")


class RunStatsSerializer(serializers.Serializer):
    by_status = serializers.DictField(child=serializers.IntegerField())
    by_kind = serializers.DictField(child=serializers.IntegerField())
    dead = serializers.IntegerField(help_text="Dead runs not yet retried.")
    queue_depths = serializers.DictField(child=serializers.IntegerField())
    workers_online = serializers.IntegerField()
    workers = serializers.ListField(child=serializers.CharField(), help_text="Worker names (staff only).")
    tokens = TokenUsageSerializer(help_text="LLM tokens of your runs (everyone's, for staff who see every run).")
    last_hour = LastHourSerializer()


class KindOutputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    description = serializers.CharField()
    queue = serializers.CharField()
    params_schema = serializers.JSONField()


# --- tasks, in Celery's words (the seeds' contract) -----------------------------------------

CELERY_STATES = ("PENDING", "STARTED", "PROGRESS", "RETRY", "SUCCESS", "FAILURE", "REVOKED", "UNKNOWN")

_STATE_MESSAGES = {
    "PENDING": "Task is waiting to start.",
    "STARTED": "Task has started.",
    "PROGRESS": "Task is in progress.",
    "RETRY": "Task failed and will be retried.",
    "SUCCESS": "Task completed successfully.",
    "FAILURE": "Task failed.",
    "REVOKED": "Task was cancelled.",
}
UNKNOWN_TASK_MESSAGE = "No task with this id is known to you."


def task_message(run: JobRun) -> str:
    return _STATE_MESSAGES[run.celery_state]


class TaskStatusSerializer(serializers.Serializer):
    """A run as a Celery task-status API answers for it; the run id is the task id."""

    task_id = serializers.CharField()
    status = serializers.ChoiceField(choices=CELERY_STATES)
    progress = serializers.FloatField(allow_null=True, help_text="Percent done.")
    current = serializers.IntegerField(allow_null=True)
    total = serializers.IntegerField(allow_null=True)
    description = serializers.CharField(allow_null=True, help_text="The current step and its message.")
    elapsed_time = serializers.FloatField(allow_null=True, help_text="Seconds since it started.")
    estimated_remaining = serializers.FloatField(allow_null=True, help_text="Seconds, while it runs.")
    result = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    message = serializers.CharField()
    events_url = serializers.CharField(allow_null=True, help_text="Server-Sent Events of the run (null for an "
                                                                  "unknown task).")

    @staticmethod
    def of(run: JobRun | None, *, task_id: str) -> dict:
        if run is None:
            return {"task_id": task_id, "status": "UNKNOWN", "progress": None, "current": None, "total": None,
                    "description": None, "elapsed_time": None, "estimated_remaining": None, "result": None,
                    "error": None, "message": UNKNOWN_TASK_MESSAGE, "events_url": None}
        description = ": ".join(part for part in (run.step_shown, run.progress_message) if part) or None
        return {"task_id": str(run.id), "status": run.celery_state, "progress": run.percent,
                "events_url": run_events_path(run.pk),
                "current": run.progress_current, "total": run.progress_total, "description": description,
                "elapsed_time": run.elapsed_seconds, "estimated_remaining": None if run.is_finished else run.eta_seconds,
                "result": run.result if run.status == RunStatus.SUCCESS else None, "error": run.error or None,
                "message": task_message(run)}


class AcceptedRunSerializer(RunOutputSerializer):
    """A 202's run, with what a Celery client reads first: `task_id` (the run id) and a `message`."""

    task_id = serializers.CharField(source="id", read_only=True)
    message = serializers.SerializerMethodField()

    class Meta(RunOutputSerializer.Meta):
        fields = [*RunOutputSerializer.Meta.fields, "task_id", "message"]

    def get_message(self, run: JobRun) -> str:
        return task_message(run)
