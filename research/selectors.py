"""Reads of research: the digests a user may see."""

from __future__ import annotations

from django.db.models import QuerySet

from research.models import Digest


def digest_visible_to(*, user) -> QuerySet[Digest]:
    digests = Digest.objects.select_related("job", "run").prefetch_related("documents")
    return digests if user.is_staff else digests.filter(owner=user)
