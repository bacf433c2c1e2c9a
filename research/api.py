from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets

from core.api import OwnerScopedMixin
from jobs.api import visible_jobs
from research import selectors
from research.models import Digest
from research.serializers import DigestOutputSerializer


class DigestFilter(filters.FilterSet):
    job = filters.ModelChoiceFilter(queryset=visible_jobs)

    class Meta:
        model = Digest
        fields = ["job", "partial"]


@extend_schema_view(
    list=extend_schema(description="List your research digests, newest first, filtered by job."),
    retrieve=extend_schema(description="Show one digest: content with [n] citations, the documents it covers "
                                       "and those it could not read."),
)
class DigestViewSet(OwnerScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Research digests composed by `research.digest` runs."""

    serializer_class = DigestOutputSerializer
    filterset_class = DigestFilter
    lookup_value_regex = "[0-9]+"
    model = Digest
    visible_to = staticmethod(selectors.digest_visible_to)
