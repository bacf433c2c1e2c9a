"""Where a document's vectors live for the vector half of search: pgvector (the chunk rows
themselves, the default) or Pinecone (`VECTOR_STORE=pinecone`). Either way the chunk rows in
PostgreSQL stay the source of truth: hits are joined to them, owner-scoped, so a vector whose
chunk is gone never surfaces. Keys are (document id, chunk index)."""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Protocol

from django.conf import settings
from django.db import connection, transaction
from pgvector.django import CosineDistance

from documents.models import EMBEDDING_DIMENSIONS

logger = logging.getLogger(__name__)

ChunkKey = tuple[str, int]
# HNSW candidates examined per query; above the candidates asked so that filtering by owner still
# leaves enough.
HNSW_EF_SEARCH = 100


class VectorStore(Protocol):
    # Whether document_replace must be given the vectors (they live outside the chunk rows).
    needs_vectors: bool

    def document_replace(self, *, document_id: str, owner_id: int, chunks: list[tuple[int, int | None]],
                         vectors: list[list[float]], previous_count: int) -> None: ...

    def document_delete(self, *, document_id: str, chunk_count: int) -> None: ...

    def nearest(self, *, owner_id: int, vector: list[float], n: int,
                document_id: str | None = None, exact: bool = False) -> list[tuple[ChunkKey, float]]: ...


class PgvectorStore:
    """The vectors are the chunk rows' `embedding` column, written with the chunks."""

    needs_vectors = False

    def document_replace(self, **kwargs) -> None:
        return None

    def document_delete(self, **kwargs) -> None:
        return None

    def nearest(self, *, owner_id, vector, n, document_id=None, exact=False):
        """Through the HNSW index unless `exact`, which scans every row (the yardstick for recall)."""
        from documents.models import Chunk, DocumentStatus

        chunks = Chunk.objects.filter(document__owner_id=owner_id, document__status=DocumentStatus.READY)
        if document_id:
            chunks = chunks.filter(document_id=document_id)
        ranked = (chunks.annotate(distance=CosineDistance("embedding", vector)).order_by("distance")
                  .values_list("document_id", "chunk_index", "distance")[:n])
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL hnsw.ef_search = {max(HNSW_EF_SEARCH, n)}")
                if exact:
                    cursor.execute("SET LOCAL enable_indexscan = off")
            rows = list(ranked)
        return [((str(document), index), 1.0 - float(distance)) for document, index, distance in rows]


@lru_cache(maxsize=1)
def vector_store() -> VectorStore:
    if settings.VECTOR_STORE == "pinecone":
        from integrations.pinecone import PineconeStore

        return PineconeStore(api_key=settings.PINECONE_API_KEY, host=settings.PINECONE_INDEX_HOST,
                             namespace=settings.PINECONE_NAMESPACE, timeout=settings.PINECONE_TIMEOUT,
                             dimensions=EMBEDDING_DIMENSIONS)
    return PgvectorStore()
