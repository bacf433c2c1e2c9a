"""Reads for documents: what a user may see, and hybrid search over their ready documents."""

from __future__ import annotations

import math
import os
import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.db import connection
from django.db.models import Exists, QuerySet

from core.errors import ErrorCode, PermanentError, TransientError
from core.permissions import sees_everyones
from documents.errors import DocumentsError
from documents.models import SEARCH_CONFIG, Document, DocumentStatus
from documents.pipeline.embed import embeddings_warm_up, texts_embed
from documents.retrieval import (
    HIGHLIGHT_START,
    HIGHLIGHT_STOP,
    SearchHit,
    SearchMode,
    candidates_for,
    ranks_fuse,
    snippet_html,
)
from documents.vector_store import vector_store

SEARCH_MAX_K = 50
# Documents are ranked by their passages: this many candidate passages per wanted document reach
# the fusion, at most what one HNSW search returns (pgvector's ef_search caps at 1000).
RELEVANT_CHUNKS_PER_DOCUMENT = 20
RELEVANT_MAX_CHUNKS = 1000
# Keyword search is BM25-like: a chunk scores the sum, over the query's words it contains, of each
# word's inverse document frequency (from LexemeStat) times ts_rank of that word (its frequency in
# the chunk, normalised by 1 + log(length)). Words in more than COMMON_WORD_SHARE of the owner's
# chunks say little and would make every chunk a candidate: they are dropped, unless all are.
COMMON_WORD_SHARE = 0.2
# The query's words as PostgreSQL stems them (stop words gone), with their counts: no user text
# reaches query syntax.
_WORD_COUNTS_SQL = """
SELECT s.lexeme, s.chunks,
       (SELECT coalesce(sum(chunk_count), 0) FROM documents_document WHERE owner_id = %(owner)s AND status = %(ready)s)
  FROM documents_lexemestat s
 WHERE s.owner_id = %(owner)s
   AND s.lexeme = ANY(tsvector_to_array(to_tsvector(%(config)s::regconfig, %(q)s)))"""
_KEYWORD_SQL = """
WITH words AS (SELECT quote_literal(w)::tsquery AS q, weight FROM unnest(%(words)s::text[], %(weights)s::float8[])
                                                                  AS t(w, weight)),
     query AS (SELECT string_agg(quote_literal(w), ' | ')::tsquery AS q FROM unnest(%(words)s::text[]) AS t(w))
SELECT c.document_id, c.chunk_index,
       (SELECT sum(words.weight * ts_rank(c.search_vector, words.q, 1)) FROM words WHERE c.search_vector @@ words.q)
  FROM documents_chunk c JOIN documents_document d ON d.id = c.document_id, query
 WHERE d.owner_id = %(owner)s AND d.status = %(ready)s AND c.search_vector @@ query.q {document}
 ORDER BY 3 DESC, c.id
 LIMIT %(n)s"""
# A query's words OR'ed, for the snippet's highlights.
_OR_QUERY = "replace(plainto_tsquery(%(config)s::regconfig, %(q)s)::text, ' & ', ' | ')::tsquery"
_HITS_SQL = f"""
WITH query AS (SELECT {_OR_QUERY} AS q),
     wanted AS (SELECT * FROM unnest(%(documents)s::uuid[], %(indexes)s::int[]) AS w(document_id, chunk_index))
SELECT c.document_id, c.chunk_index, c.page, c.text, d.title,
       ts_headline(%(config)s::regconfig, c.text, query.q, %(headline)s)
  FROM documents_chunk c
  JOIN wanted ON wanted.document_id = c.document_id AND wanted.chunk_index = c.chunk_index
  JOIN documents_document d ON d.id = c.document_id, query
 WHERE d.owner_id = %(owner)s AND d.status = %(ready)s"""
# A snippet of 15-35 words around the matches, up to two fragments.
_HEADLINE_OPTIONS = (f'StartSel="{HIGHLIGHT_START}", StopSel="{HIGHLIGHT_STOP}", MinWords=15, MaxWords=35, '
                     'ShortWord=2, MaxFragments=2, FragmentDelimiter=" … "')


def document_visible_to(*, user) -> QuerySet[Document]:
    documents = Document.objects.select_related("run")
    return documents if sees_everyones(user, Document) else documents.filter(owner=user)


def chunks_search(*, user, query: str, k: int = 5, document_id=None,
                  mode: str = SearchMode.HYBRID) -> list[SearchHit]:
    """The best passages of the user's own ready documents (staff included: search is always
    personal), by meaning (vector), by words (keyword), or both fused (hybrid, the default). Each
    hit says which ranking found it, at what rank and score, with a highlighted snippet."""
    if not query.strip():
        raise DocumentsError("q must not be empty.", field="q")
    if not 1 <= k <= SEARCH_MAX_K:
        raise DocumentsError(f"k must be between 1 and {SEARCH_MAX_K}.", field="k")
    if mode not in SearchMode.values:
        raise DocumentsError(f"mode must be one of {', '.join(SearchMode.values)}.", field="mode")
    n = candidates_for(k) if mode == SearchMode.HYBRID else k
    # The query's embedding (model time, the GIL released) is computed beside the keyword query
    # (database time): hybrid costs about what the slower of the two costs, not their sum.
    embedding = None if mode == SearchMode.KEYWORD else _embedder().submit(texts_embed, [query])
    keyword_ranking = [] if mode == SearchMode.VECTOR else chunks_keyword_ranked(
        owner_id=user.id, query=query, n=n, document_id=document_id)
    vector_ranking = [] if embedding is None else _vector_ranked(user=user, embedding=embedding, n=n,
                                                                  document_id=document_id)
    if mode == SearchMode.HYBRID:
        chosen = ranks_fuse(vector=vector_ranking, keyword=keyword_ranking, k=k)
    else:
        chosen = (vector_ranking or keyword_ranking)[:k]
    return _hits(owner_id=user.id, query=query, chosen=chosen, vector=vector_ranking, keyword=keyword_ranking)


def documents_searchable(*, owner_id) -> Exists:
    """Whether the owner has a ready document with passages: where none is, a search has nothing to
    find, and a reply need not wait for the question's embedding before it asks the LLM. An
    expression, asked with the row that names the owner (`OuterRef`), in the same round trip."""
    return Exists(Document.objects.filter(owner_id=owner_id, status=DocumentStatus.READY, chunk_count__gt=0))


def documents_relevant(*, user, query: str, limit: int, among: set[str] | None = None) -> list[str]:
    """Ids of the user's ready documents most relevant to `query`, best first: the hybrid search's
    two rankings over passages, fused, each document placed by its best passage. Only documents
    in `among` (ids) when given; a document neither ranking found is not relevant."""
    n = min(limit * RELEVANT_CHUNKS_PER_DOCUMENT, RELEVANT_MAX_CHUNKS)
    embedding = _embedder().submit(texts_embed, [query])
    keyword = chunks_keyword_ranked(owner_id=user.id, query=query, n=n)
    vector = _vector_ranked(user=user, embedding=embedding, n=n, document_id=None)
    ranked: list[str] = []
    for (document_id, _index), _score in ranks_fuse(vector=vector, keyword=keyword, k=len(vector) + len(keyword)):
        if document_id not in ranked and (among is None or document_id in among):
            ranked.append(document_id)
            if len(ranked) == limit:
                break
    return ranked


def documents_closeness(*, user, queries: list[str], document_ids: list[str]) -> dict[str, float]:
    """For each of the user's documents named, the cosine similarity of its passage closest to any of
    `queries`: how relevant the document is at best, on an absolute scale (a ranking is relative).
    A document with no passage indexed is not in the answer."""
    if not document_ids or not queries:
        return {}
    try:
        vectors = [list(map(float, v)) for v in texts_embed(list(queries))]
        best: dict[str, float] = {}
        for document_id in document_ids:
            scores = [score for vector in vectors for _key, score in vector_store().nearest(
                owner_id=user.id, vector=vector, n=1, document_id=document_id)]
            if scores:  # a document with no passage indexed has no closeness, not a made-up one
                best[str(document_id)] = max(scores)
        return best
    except (TransientError, PermanentError) as exc:
        raise DocumentsError(f"Search is unavailable: {exc}. Try again shortly.", code=ErrorCode.UNAVAILABLE) from exc


def _vector_ranked(*, user, embedding: Future, n: int, document_id) -> list:
    try:
        vector = embedding.result()[0]
        return vector_store().nearest(owner_id=user.id, vector=vector, n=n, document_id=document_id)
    except (TransientError, PermanentError) as exc:
        raise DocumentsError(f"Search is unavailable: {exc}. Try again shortly, or use mode=keyword.",
                             code=ErrorCode.UNAVAILABLE) from exc


_embedder_pool: tuple[int, ThreadPoolExecutor] | None = None


def _embedder() -> ThreadPoolExecutor:
    """One thread per process for query embeddings, made after any fork (a pool's threads do not
    survive one: a worker forked from a parent that had searched would wait forever)."""
    global _embedder_pool
    if _embedder_pool is None or _embedder_pool[0] != os.getpid():
        _embedder_pool = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="query-embedding"))
    return _embedder_pool[1]


def search_warm_up() -> None:
    """The web process's warm-up: the model loaded and run once on the thread that embeds queries,
    whose own first call costs a search about 4 ms more than the next."""
    _embedder().submit(embeddings_warm_up).result()


def search_thread_warm_up() -> None:
    """A request thread's warm-up: each of a search's statements run once on the thread's database
    connection, for a user no one is (a new connection's first search loads pgvector, the text
    search dictionaries and the tables' catalog into its server process: ~6 ms). Nothing leaves
    the machine: neither Pinecone nor an embeddings server is asked."""
    nobody = 0
    _word_weights(owner_id=nobody, query="warm-up")  # nobody's words weigh nothing: the next statement gets one
    _keyword_ranked(owner_id=nobody, weights={"warm": 1.0}, n=1)
    _hits(owner_id=nobody, query="warm-up", chosen=[((str(uuid.UUID(int=0)), 0), 0.0)], vector=[], keyword=[])
    if settings.VECTOR_STORE == "pgvector":
        unit = [1.0] + [0.0] * (settings.EMBEDDING_DIMENSIONS - 1)
        vector_store().nearest(owner_id=nobody, vector=unit, n=1)


def chunks_keyword_ranked(*, owner_id: int, query: str, n: int, document_id=None) -> list:
    """(key, score) of the owner's ready chunks sharing words with `query`, best first (BM25-like)."""
    weights = _word_weights(owner_id=owner_id, query=query)
    return _keyword_ranked(owner_id=owner_id, weights=weights, n=n, document_id=document_id) if weights else []


def _keyword_ranked(*, owner_id: int, weights: dict[str, float], n: int, document_id=None) -> list:
    sql = _KEYWORD_SQL.format(document="AND c.document_id = %(document)s" if document_id else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, {"words": list(weights), "weights": list(weights.values()), "owner": owner_id,
                             "ready": DocumentStatus.READY, "n": n,
                             "document": str(document_id) if document_id else None})
        return [((str(document), index), float(score)) for document, index, score in cursor.fetchall()]


def _word_weights(*, owner_id: int, query: str) -> dict[str, float]:
    """Inverse document frequency of each word of the query found in the owner's chunks, without
    the words too common to tell passages apart (the rarest is kept if all are)."""
    with connection.cursor() as cursor:
        cursor.execute(_WORD_COUNTS_SQL, {"config": SEARCH_CONFIG, "q": query, "owner": owner_id,
                                          "ready": DocumentStatus.READY})
        # quote_literal writes a backslash as E'…' syntax, which tsquery input does not read.
        counts = [row for row in cursor.fetchall() if "\\" not in row[0]]
    if not counts:
        return {}
    total = max(max(int(row[2]) for row in counts), max(row[1] for row in counts))
    kept = [(lexeme, df) for lexeme, df, _ in counts if df <= COMMON_WORD_SHARE * total]
    if not kept:
        kept = [min(((lexeme, df) for lexeme, df, _ in counts), key=lambda item: item[1])]
    return {lexeme: math.log(1 + (total - df + 0.5) / (df + 0.5)) for lexeme, df in kept}


def _hits(*, owner_id: int, query: str, chosen: list, vector: list, keyword: list) -> list[SearchHit]:
    if not chosen:
        return []
    keys = [key for key, _ in chosen]
    with connection.cursor() as cursor:
        cursor.execute(_HITS_SQL, {"config": SEARCH_CONFIG, "q": query, "owner": owner_id,
                                   "ready": DocumentStatus.READY, "headline": _HEADLINE_OPTIONS,
                                   "documents": [d for d, _ in keys], "indexes": [i for _, i in keys]})
        rows = {(str(r[0]), r[1]): r for r in cursor.fetchall()}
    by_vector = {key: (rank, score) for rank, (key, score) in enumerate(vector, start=1)}
    by_keyword = {key: (rank, score) for rank, (key, score) in enumerate(keyword, start=1)}
    hits = []
    for key, score in chosen:
        row = rows.get(key)
        if row is None:  # a vector store hit whose chunk is gone (deleted, re-ingested shorter)
            continue
        vector_rank, vector_score = by_vector.get(key, (None, None))
        keyword_rank, keyword_score = by_keyword.get(key, (None, None))
        hits.append(SearchHit(
            document_id=key[0], chunk_index=key[1], page=row[2], text=row[3], title=row[4],
            snippet=snippet_html(row[5]), score=round(score, 6),
            found_by=[name for name, rank in (("vector", vector_rank), ("keyword", keyword_rank)) if rank],
            vector_rank=vector_rank, vector_score=None if vector_score is None else round(vector_score, 4),
            keyword_rank=keyword_rank, keyword_score=None if keyword_score is None else round(keyword_score, 6),
        ))
    return hits
