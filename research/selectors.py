"""Reads of research: the digests a user may see."""

from __future__ import annotations

from django.db.models import QuerySet
from pgvector.django import CosineDistance

from core.context import ContextNote
from core.permissions import sees_everyones
from documents.pipeline.embed import texts_embed
from research.models import Digest

# A question is about a digest when its embedding is at least this close (cosine) to the digest's
# topic and questions: MiniLM puts paraphrases of one subject above 0.5, different subjects below 0.3.
DIGEST_CONTEXT_MIN_SIMILARITY = 0.5
# At most this much of a digest goes to the model with a question.
DIGEST_CONTEXT_CHARS = 3000


def digest_visible_to(*, user) -> QuerySet[Digest]:
    digests = Digest.objects.select_related("job", "run").prefetch_related("documents")
    return digests if sees_everyones(user, Digest) else digests.filter(owner=user)


def digest_notes_for(*, user, question: str) -> list[ContextNote]:
    """The latest digest (of any of the user's jobs) whose topic the question is about, as a note
    for chat; none when no digest is close enough."""
    latest = (Digest.objects.filter(owner=user, topic_embedding__isnull=False)
              .order_by("job_id", "-created_at").distinct("job_id").values("id"))
    if not latest.exists():
        return []
    vector = list(map(float, texts_embed([question])[0]))
    digest = (Digest.objects.filter(id__in=latest).annotate(distance=CosineDistance("topic_embedding", vector))
              .filter(distance__lte=1 - DIGEST_CONTEXT_MIN_SIMILARITY).order_by("distance").first())
    if digest is None:
        return []
    text = digest.content if len(digest.content) <= DIGEST_CONTEXT_CHARS else digest.content[:DIGEST_CONTEXT_CHARS] + " …"
    return [ContextNote(title=f"Research digest “{digest.topic}” of {digest.created_at:%Y-%m-%d}", text=text,
                        citation={"digest_id": digest.pk, "title": f"Research digest: {digest.topic}"})]
