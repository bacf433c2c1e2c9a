from django_filters import rest_framework as filters
from rest_framework import viewsets

from core.api import OwnerScopedMixin, described
from jobs.public import visible_jobs
from research import selectors
from research.models import Digest
from research.serializers import DigestOutputSerializer


class DigestFilter(filters.FilterSet):
    job = filters.ModelChoiceFilter(queryset=visible_jobs)

    class Meta:
        model = Digest
        fields = ["job", "partial"]


@described(
    list="List your research digests, newest first, filtered by job.",
    retrieve="Show one digest: content with [n] citations, the documents it covers and those it could not read.",
)
class DigestViewSet(OwnerScopedMixin, viewsets.ReadOnlyModelViewSet):
    """Research digests composed by `research.digest` runs."""

    visible_to = staticmethod(selectors.digest_visible_to)
    serializer_class = DigestOutputSerializer
    filterset_class = DigestFilter
    lookup_value_regex = "[0-9]+"
