from rest_framework import serializers

from jobs.models import Job, JobRun


class RunOutputSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    elapsed_seconds = serializers.FloatField(read_only=True)
    eta_seconds = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()

    class Meta:
        model = JobRun
        fields = [
            "id", "kind", "status", "queue", "attempts", "max_attempts", "progress", "elapsed_seconds",
            "eta_seconds", "created_at", "started_at", "finished_at", "due_at", "error", "result", "dead",
            "cancel_requested", "retry_of", "parent", "job", "correlation_id", "triggered_by", "args",
            "attempt_log",
        ]

    def get_progress(self, run: JobRun) -> dict:
        return {
            "current": run.progress_current,
            "total": run.progress_total,
            "percent": run.percent,
            "step": run.progress_step,
            "message": run.progress_message,
        }

    def get_eta_seconds(self, run: JobRun) -> float | None:
        return None if run.is_finished else run.eta_seconds

    def get_error(self, run: JobRun) -> str | None:
        return run.error or None


class JobOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ["id", "name", "kind", "params", "schedule", "enabled", "owner", "created_at", "updated_at"]


class JobInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.CharField(max_length=100)
    params = serializers.JSONField(required=False, default=dict)
    schedule = serializers.JSONField(required=False, allow_null=True, default=None)
    enabled = serializers.BooleanField(required=False, default=True)


class JobPatchSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    params = serializers.JSONField(required=False)
    schedule = serializers.JSONField(required=False, allow_null=True)
    enabled = serializers.BooleanField(required=False)


class TriggerInputSerializer(serializers.Serializer):
    params = serializers.JSONField(required=False, default=dict)


class KindOutputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    description = serializers.CharField()
    queue = serializers.CharField()
    params_schema = serializers.JSONField()
