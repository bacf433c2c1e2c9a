"""Reads for documents: what a user may see, and semantic search over their ready documents."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import QuerySet
from pgvector.django import CosineDistance

from documents.errors import DocumentsError
from documents.models import Chunk, Document, DocumentStatus
from documents.pipeline.embed import texts_embed
from jobs.errors import PermanentError, TransientError

SEARCH_MAX_K = 50
# HNSW candidates examined per query; above k so filtering by owner still leaves k results.
SEARCH_EF = 100


@dataclass
class SearchHit:
    document_id: str
    title: str
    chunk_index: int
    page: int | None
    text: str
    score: float


def document_visible_to(*, user) -> QuerySet[Document]:
    documents = Document.objects.select_related("run")
    return documents if user.is_staff else documents.filter(owner=user)


def chunks_search(*, user, query: str, k: int = 5, document_id=None) -> list[SearchHit]:
    """Best chunks of the user's own ready documents (staff included: search is always personal)."""
    if not query.strip():
        raise DocumentsError("q must not be empty.", field="q")
    if not 1 <= k <= SEARCH_MAX_K:
        raise DocumentsError(f"k must be between 1 and {SEARCH_MAX_K}.", field="k")
    try:
        vector = texts_embed([query])[0]
    except (TransientError, PermanentError) as exc:
        raise DocumentsError(f"Search is unavailable: the embedding backend failed ({exc}). Try again shortly.",
                             code="unavailable") from exc
    return chunks_nearest(user=user, vector=vector, k=k, document_id=document_id)


def chunks_nearest(*, user, vector: list[float], k: int, document_id=None, exact: bool = False) -> list[SearchHit]:
    """The k chunks of the user's ready documents closest to `vector` (cosine), through the HNSW index
    unless `exact`, which scans every row (the yardstick for recall)."""
    chunks = Chunk.objects.filter(document__owner=user, document__status=DocumentStatus.READY)
    if document_id:
        chunks = chunks.filter(document_id=document_id)
    ranked = (chunks.annotate(distance=CosineDistance("embedding", vector)).order_by("distance")
              .values("document_id", "document__title", "chunk_index", "page", "text", "distance")[:k])
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL hnsw.ef_search = {max(SEARCH_EF, k)}")
            if exact:
                cursor.execute("SET LOCAL enable_indexscan = off")
        rows = list(ranked)
    return [SearchHit(str(r["document_id"]), r["document__title"], r["chunk_index"], r["page"], r["text"],
                      round(1.0 - float(r["distance"]), 4)) for r in rows]
