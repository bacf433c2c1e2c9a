"""Pinecone as the store of a document's vectors (VECTOR_STORE=pinecone): one vector per chunk
under `<document id>#<chunk index>`, its owner, document and page as metadata."""

from __future__ import annotations

from core.errors import PermanentError, TransientError
from core.health import CheckFailed

# Pinecone accepts up to 1000 vectors (and 2 MB) per upsert; 100 384-dimension vectors with
# metadata are about 400 KB, well inside both.
PINECONE_UPSERT_BATCH = 100
# Ids per delete request (Pinecone's limit is 1000).
PINECONE_DELETE_BATCH = 1000


def pinecone_vector_id(document_id: str, chunk_index: int) -> str:
    return f"{document_id}#{chunk_index}"


class PineconeStore:
    """One vector per chunk under `<document id>#<chunk index>`, with owner, document and page as
    metadata, in PINECONE_NAMESPACE. Errors become TransientError (429, 5xx, timeouts, garbage:
    retried like any hiccup) or PermanentError (bad key, missing index, refused payload)."""

    needs_vectors = True

    def __init__(self, *, api_key: str, host: str, namespace: str, timeout: float, dimensions: int):
        from pinecone import Index

        self.index = Index(host=host, api_key=api_key, timeout=timeout)
        self.namespace = namespace
        self.dimensions = dimensions

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
        stats = self._call("describe_index_stats", self.index.describe_index_stats)
        if stats.dimension is not None and stats.dimension != self.dimensions:
            raise CheckFailed(f"the index holds {stats.dimension}-dimension vectors; the embedding model makes "
                              f"{self.dimensions}")
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
