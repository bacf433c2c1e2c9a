import uuid
from datetime import timedelta

from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from core.api import OwnerScopedMixin, checked_input, described, paginated, validated_input
from core.health import health_report_for
from core.permissions import audit_others
from jobs import selectors
from jobs.models import Job, JobRun, TriggeredBy
from jobs.registry import kinds_for
from jobs.serializers import (
    AcceptedRunSerializer,
    JobInputSerializer,
    JobOutputSerializer,
    JobPatchSerializer,
    KindOutputSerializer,
    RunDetailSerializer,
    RunLogEntrySerializer,
    RunOutputSerializer,
    RunStatsSerializer,
    TaskStatusSerializer,
    TriggerInputSerializer,
)
from jobs.services import definitions, steering


def accepted_run(run: JobRun) -> Response:
    """A 202 for work that starts as `run`: the run, with `task_id` and `message` for Celery clients."""
    return Response(AcceptedRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class StoredDateTimeField(IsoDateTimeField):
    """An ISO time PostgreSQL can store: UTC offsets beyond ±14:00 are refused with a 400, not a 500."""

    def to_python(self, value):
        parsed = super().to_python(value)
        offset = parsed.utcoffset() if parsed is not None else None
        if offset is not None and abs(offset) > timedelta(hours=14):
            raise ValidationError("Give a time with a UTC offset between -14:00 and +14:00.", code="invalid")
        return parsed


class StoredDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = StoredDateTimeField


def visible_jobs(request):
    # Another user's job id is answered as an unknown one (400), never as an empty list.
    return selectors.job_visible_to(user=request.user) if request else Job.objects.none()


def _visible_runs(request):
    # Another user's run id is answered as an unknown one (400), never as an empty list.
    return selectors.run_visible_to(user=request.user) if request else JobRun.objects.none()


class RunFilter(filters.FilterSet):
    created_after = StoredDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = StoredDateTimeFilter(field_name="created_at", lookup_expr="lt")
    job = filters.ModelChoiceFilter(queryset=visible_jobs)
    parent = filters.ModelChoiceFilter(queryset=_visible_runs, label="The children of this run (its fan-out).")
    dead_letter = filters.BooleanFilter(method="filter_dead_letter",
                                        label="Dead and not yet retried (the dead-letter queue).")

    def filter_dead_letter(self, queryset, name, value):
        letters = queryset.dead_letters()
        return letters if value else queryset.exclude(pk__in=letters.values("pk"))

    class Meta:
        model = JobRun
        fields = ["status", "kind", "queue", "dead", "triggered_by", "job", "parent", "canvas_id"]


@described(
    list="List your runs, newest first, filtered by status, kind, queue, job, parent, Celery group / chain / "
         "chord (canvas_id) or time.",
    retrieve="Show one run: status, progress with ETA, attempts, error and result.",
)
class RunViewSet(OwnerScopedMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = RunOutputSerializer
    filterset_class = RunFilter
    # Anything but a UUID is simply not a run: 404, not a validation error.
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    visible_to = staticmethod(selectors.run_visible_to)
    # Another user's run: cancelled or retried with the permission to change runs (core.permissions).
    others_may = {"cancel", "retry"}

    def get_queryset(self):
        return super().get_queryset().with_children_counts().with_stalled()

    @extend_schema(responses=RunDetailSerializer)
    def retrieve(self, request, pk=None):
        """One run, with who acted on it (cancelled, retried, force-failed) besides its owner."""
        return Response(RunDetailSerializer(self.get_object()).data)

    @extend_schema(request=None, responses={202: AcceptedRunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a run: a waiting run never starts, a running one stops at its next progress report."""
        run = self.get_object()
        cancelled = steering.run_cancel(run=run)
        audit_others(user=request.user, obj=run, message="Cancelled through the API")
        return accepted_run(cancelled)

    @extend_schema(request=None, responses={202: AcceptedRunSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Run a failed, cancelled or partial run again as a new run; asked twice, it answers with the same retry."""
        # Asked again (or concurrently), it answers with the one retry already made.
        original = self.get_object()
        run, _ = steering.run_retry(run=original, triggered_by=TriggeredBy.API, owner=request.user)
        audit_others(user=request.user, obj=original, message=f"Retried through the API as run {run.id}")
        return accepted_run(run)

    @extend_schema(responses=RunStatsSerializer)
    @action(detail=False, methods=["get"])
    def stats(self, request):
        """Counts of your runs by status and kind, dead letters, waiting work per queue and workers online."""
        return Response(RunStatsSerializer(selectors.run_stats(user=request.user)).data)

    @extend_schema(responses=RunLogEntrySerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def log(self, request, pk=None):
        """What the run's body reported as it went: level, message and time, oldest first."""
        return paginated(self, request, self.get_object().log_entries.all(), RunLogEntrySerializer)


class JobViewSet(OwnerScopedMixin, viewsets.GenericViewSet):
    visible_to = staticmethod(selectors.job_visible_to)
    # Another user's job: edited or triggered with the permission to change jobs, deleted with delete.
    others_may = {"partial_update", "trigger", "destroy"}
    serializer_class = JobOutputSerializer
    filter_backends: list = []
    lookup_value_regex = "[0-9]+"

    @extend_schema(responses=JobOutputSerializer(many=True))
    def list(self, request):
        """List your job definitions."""
        return paginated(self, request, self.get_queryset(), JobOutputSerializer)

    @extend_schema(request=JobInputSerializer, responses={201: JobOutputSerializer})
    def create(self, request):
        """Define a job: a kind, its params and optionally a schedule (crontab or interval)."""
        data, refused = checked_input(JobInputSerializer, request.data)
        job = definitions.job_create(owner=request.user, refused=refused, **{"name": "", "kind": "", **data})
        return Response(JobOutputSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=JobOutputSerializer)
    def retrieve(self, request, pk=None):
        """Show one job definition."""
        return Response(JobOutputSerializer(self.get_object()).data)

    @extend_schema(request=JobPatchSerializer, responses=JobOutputSerializer)
    def partial_update(self, request, pk=None):
        """Change a job's name, params, schedule or enabled flag; the schedule follows at once."""
        job = self.get_object()
        data, refused = checked_input(JobPatchSerializer, request.data, partial=True)
        job = definitions.job_update(job=job, data=data, actor=request.user, refused=refused)
        audit_others(user=request.user, obj=job, message=f"Changed through the API: {', '.join(sorted(data))}")
        return Response(JobOutputSerializer(job).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        """Delete a job and its schedule; its past runs stay."""
        job = self.get_object()
        audit_others(user=request.user, obj=job, message="Deleted through the API", deleted=True)
        definitions.job_delete(job=job)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TriggerInputSerializer, responses={202: AcceptedRunSerializer})
    @action(detail=True, methods=["post"])
    def trigger(self, request, pk=None):
        """Run a job now, with its params or the ones given here."""
        job = self.get_object()
        data = validated_input(TriggerInputSerializer, request.data)
        run = definitions.job_trigger(job=job, triggered_by=TriggeredBy.API, params=data["params"],
                                      actor=request.user)
        audit_others(user=request.user, obj=job, message=f"Run now through the API: run {run.id}")
        return accepted_run(run)

    @extend_schema(responses=RunOutputSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        """List the runs of one job, newest first."""
        job = self.get_object()
        runs = selectors.run_visible_to(user=request.user).filter(job=job).order_by("-created_at").with_children_counts()
        return paginated(self, request, runs, RunOutputSerializer)

    @extend_schema(responses=KindOutputSerializer(many=True))
    @action(detail=False, methods=["get"], pagination_class=None)
    def kinds(self, request):
        """The kinds of work you may define jobs for, with the JSON Schema of their params."""
        kinds = [
            {"kind": k.kind, "description": k.description, "queue": k.queue, "params_schema": k.params_schema}
            for k in kinds_for(user=request.user)
        ]
        return Response(kinds)



def _celery_stats(stats: dict) -> dict:
    """The runs' stats with their counts by status in Celery's state names."""
    by_status = {("PENDING" if name == "QUEUED" else name): n for name, n in stats["by_status"].items()}
    return {**stats, "by_status": by_status}


@extend_schema_view(
    retrieve=extend_schema(parameters=[OpenApiParameter("task_id", str, OpenApiParameter.PATH)]),
    cancel=extend_schema(parameters=[OpenApiParameter("task_id", str, OpenApiParameter.PATH)]),
    retry=extend_schema(parameters=[OpenApiParameter("task_id", str, OpenApiParameter.PATH)]),
)
class TaskViewSet(viewsets.ViewSet):
    """Runs in Celery's words, for clients written against Celery task-status APIs: the task id is
    the run id, states are Celery's (PENDING for a run waiting to start), and an id that is not the
    caller's reads as UNKNOWN, exactly as one that does not exist."""

    lookup_url_kwarg = "task_id"
    lookup_value_regex = "[^/]+"

    def _visible(self, task_id: str) -> JobRun | None:
        try:
            uuid.UUID(task_id)
        except ValueError:
            return None
        return selectors.run_visible_to(user=self.request.user).filter(id=task_id).first()

    # Another user's task: cancelled or retried with the permission to change runs (core.permissions).
    others_may = {"cancel", "retry"}

    def _held(self, task_id: str) -> JobRun:
        run = self._visible(task_id)
        if run is None:
            raise NotFound("No task with this id is known to you.")
        self.check_object_permissions(self.request, run)
        return run

    @extend_schema(responses=TaskStatusSerializer)
    def retrieve(self, request, task_id=None):
        """A task's status, progress and outcome in Celery's state names; UNKNOWN (200) for an id you cannot see."""
        return Response(TaskStatusSerializer.of(self._visible(task_id), task_id=task_id))

    @extend_schema(request=None, responses={202: TaskStatusSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, task_id=None):
        """Cancel a task, as for its run: a waiting one never starts, a running one stops at its next report."""
        held = self._held(task_id)
        run = steering.run_cancel(run=held)
        audit_others(user=request.user, obj=held, message="Cancelled through the API (as a task)")
        return Response(TaskStatusSerializer.of(run, task_id=task_id), status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: TaskStatusSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, task_id=None):
        """Run a failed or cancelled task again as a new task (its id in `task_id`); asked twice, the same one."""
        held = self._held(task_id)
        run, _ = steering.run_retry(run=held, triggered_by=TriggeredBy.API, owner=request.user)
        audit_others(user=request.user, obj=held, message=f"Retried through the API (as a task) as run {run.id}")
        return Response(TaskStatusSerializer.of(run, task_id=str(run.id)), status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=RunStatsSerializer)
    @action(detail=False, methods=["get"])
    def stats(self, request):
        """As /api/runs/stats/, with the counts by status in Celery's state names."""
        return Response(_celery_stats(RunStatsSerializer(selectors.run_stats(user=request.user)).data))

    @extend_schema(responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT})
    @action(detail=False, methods=["get"], url_path="health-check")
    def health_check(self, request):
        """As /api/health/ for a signed-in caller: each dependency's check (database, cache, broker, workers, AI)."""
        body, code = health_report_for(request.user)
        return Response(body, status=code)
