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
from jobs.errors import PermanentError, TransientError

logger = logging.getLogger(__name__)

ChunkKey = tuple[str, int]
# HNSW candidates examined per query; above the candidates asked so that filtering by owner still
# leaves enough.
HNSW_EF_SEARCH = 100
# Pinecone accepts up to 1000 vectors (and 2 MB) per upsert; 100 384-dimension vectors with
# metadata are about 400 KB, well inside both.
PINECONE_UPSERT_BATCH = 100
# Ids per delete request (Pinecone's limit is 1000).
PINECONE_DELETE_BATCH = 1000


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


def pinecone_vector_id(document_id: str, chunk_index: int) -> str:
    return f"{document_id}#{chunk_index}"


class PineconeStore:
    """One vector per chunk under `<document id>#<chunk index>`, with owner, document and page as
    metadata, in PINECONE_NAMESPACE. Errors become TransientError (429, 5xx, timeouts, garbage:
    retried like any hiccup) or PermanentError (bad key, missing index, refused payload)."""

    needs_vectors = True

    def __init__(self, *, api_key: str, host: str, namespace: str, timeout: float):
        from pinecone import Index

        self.index = Index(host=host, api_key=api_key, timeout=timeout)
        self.namespace = namespace

    def _call(self, what: str, function, **kwargs):
        from pinecone.errors.exceptions import (
            PineconeConnectionError,
            PineconeTimeoutError,
            RateLimitError,
            ResponseParsingError,
            ServiceError,
        )

        try:
            return function(**kwargs)
        except (RateLimitError, ServiceError, PineconeTimeoutError, PineconeConnectionError,
                ResponseParsingError) as exc:
            raise TransientError(f"Pinecone {what} failed: {type(exc).__name__}") from exc
        except Exception as exc:
            raise PermanentError(f"Pinecone {what} refused: {type(exc).__name__}: {exc}") from exc

    def health(self) -> str:
        """The index answers and holds vectors of our dimension (describe_index_stats)."""
        from project.health import CheckFailed

        stats = self._call("describe_index_stats", self.index.describe_index_stats)
        if stats.dimension is not None and stats.dimension != EMBEDDING_DIMENSIONS:
            raise CheckFailed(f"the index holds {stats.dimension}-dimension vectors; the embedding model makes "
                              f"{EMBEDDING_DIMENSIONS}")
        namespace = stats.namespaces.get(self.namespace or "__default__")
        return f"reachable; {namespace.vector_count if namespace else 0} vectors in {self.namespace!r}"

    def document_replace(self, *, document_id, owner_id, chunks, vectors, previous_count):
        records = []
        for (chunk_index, page), values in zip(chunks, vectors):
            metadata = {"owner": owner_id, "document": document_id}
            if page is not None:  # Pinecone metadata has no null
                metadata["page"] = page
            records.append({"id": pinecone_vector_id(document_id, chunk_index), "values": list(map(float, values)),
                            "metadata": metadata})
        for start in range(0, len(records), PINECONE_UPSERT_BATCH):
            self._call("upsert", self.index.upsert, vectors=records[start:start + PINECONE_UPSERT_BATCH],
                       namespace=self.namespace)
        # Upserts overwrote the ids the document keeps; a shorter re-ingestion leaves old ids beyond.
        self._delete_ids([pinecone_vector_id(document_id, i) for i in range(len(records), previous_count)])

    def document_delete(self, *, document_id, chunk_count):
        self._delete_ids([pinecone_vector_id(document_id, i) for i in range(chunk_count)])

    def _delete_ids(self, ids: list[str]) -> None:
        for start in range(0, len(ids), PINECONE_DELETE_BATCH):
            self._call("delete", self.index.delete, ids=ids[start:start + PINECONE_DELETE_BATCH],
                       namespace=self.namespace)

    def nearest(self, *, owner_id, vector, n, document_id=None, exact=False):
        where: dict = {"owner": {"$eq": owner_id}}
        if document_id:
            where["document"] = {"$eq": str(document_id)}
        answer = self._call("query", self.index.query, vector=list(map(float, vector)), top_k=n, filter=where,
                            namespace=self.namespace)
        hits = []
        for match in answer.matches:
            document, _, index = match.id.rpartition("#")
            if document and index.isdigit():
                hits.append(((document, int(index)), float(match.score)))
        return hits


@lru_cache(maxsize=1)
def vector_store() -> VectorStore:
    if settings.VECTOR_STORE == "pinecone":
        return PineconeStore(api_key=settings.PINECONE_API_KEY, host=settings.PINECONE_INDEX_HOST,
                             namespace=settings.PINECONE_NAMESPACE, timeout=settings.PINECONE_TIMEOUT)
    return PgvectorStore()
