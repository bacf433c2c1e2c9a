from datetime import timedelta

from django.core.exceptions import ValidationError
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs import selectors
from jobs.models import Job, JobRun, TriggeredBy
from jobs.registry import kinds_for
from jobs.serializers import (
    JobInputSerializer,
    JobOutputSerializer,
    JobPatchSerializer,
    KindOutputSerializer,
    RunOutputSerializer,
    TriggerInputSerializer,
)
from jobs.services import definitions, runs
from project.api import OwnerScopedMixin, paginated, validated_input


def accepted_run(run: JobRun) -> Response:
    return Response(RunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


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


def _visible_jobs(request):
    # Another user's job id is answered as an unknown one (400), never as an empty list.
    return selectors.job_visible_to(user=request.user) if request else Job.objects.none()


class RunFilter(filters.FilterSet):
    created_after = StoredDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = StoredDateTimeFilter(field_name="created_at", lookup_expr="lt")
    job = filters.ModelChoiceFilter(queryset=_visible_jobs)

    class Meta:
        model = JobRun
        fields = ["status", "kind", "queue", "dead", "triggered_by", "job"]


class RunViewSet(OwnerScopedMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = RunOutputSerializer
    filterset_class = RunFilter
    # Anything but a UUID is simply not a run: 404, not a validation error.
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    model = JobRun
    visible_to = staticmethod(selectors.run_visible_to)

    @extend_schema(request=None, responses={202: RunOutputSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return accepted_run(runs.run_cancel(run=self.get_object()))

    @extend_schema(request=None, responses={202: RunOutputSerializer})
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        # Asked again (or concurrently), it answers with the one retry already made.
        run, _ = runs.run_retry(run=self.get_object(), triggered_by=TriggeredBy.API, owner=request.user)
        return accepted_run(run)

    @extend_schema(responses={200: dict})
    @action(detail=False, methods=["get"])
    def stats(self, request):
        return Response(selectors.run_stats(user=request.user))


class JobViewSet(OwnerScopedMixin, viewsets.GenericViewSet):
    model = Job
    visible_to = staticmethod(selectors.job_visible_to)
    serializer_class = JobOutputSerializer
    filter_backends: list = []
    lookup_value_regex = "[0-9]+"

    @extend_schema(responses=JobOutputSerializer(many=True))
    def list(self, request):
        return paginated(self, request, self.get_queryset(), JobOutputSerializer)

    @extend_schema(request=JobInputSerializer, responses={201: JobOutputSerializer})
    def create(self, request):
        data = validated_input(JobInputSerializer, request.data)
        job = definitions.job_create(owner=request.user, **data)
        return Response(JobOutputSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=JobOutputSerializer)
    def retrieve(self, request, pk=None):
        return Response(JobOutputSerializer(self.get_object()).data)

    @extend_schema(request=JobPatchSerializer, responses=JobOutputSerializer)
    def partial_update(self, request, pk=None):
        job = self.get_object()
        data = validated_input(JobPatchSerializer, request.data, partial=True)
        job = definitions.job_update(job=job, data=data, actor=request.user)
        return Response(JobOutputSerializer(job).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        definitions.job_delete(job=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=TriggerInputSerializer, responses={202: RunOutputSerializer})
    @action(detail=True, methods=["post"])
    def trigger(self, request, pk=None):
        job = self.get_object()
        data = validated_input(TriggerInputSerializer, request.data)
        run = definitions.job_trigger(job=job, triggered_by=TriggeredBy.API, params=data["params"],
                                   owner=request.user)
        return accepted_run(run)

    @extend_schema(responses=RunOutputSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        job = self.get_object()
        runs = selectors.run_visible_to(user=request.user).filter(job=job).order_by("-created_at")
        return paginated(self, request, runs, RunOutputSerializer)

    @extend_schema(responses=KindOutputSerializer(many=True))
    @action(detail=False, methods=["get"])
    def kinds(self, request):
        kinds = [
            {"kind": k.kind, "description": k.description, "queue": k.queue, "params_schema": k.params_schema}
            for k in kinds_for(user=request.user)
        ]
        return Response(kinds)

