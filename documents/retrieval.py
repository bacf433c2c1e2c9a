"""Hybrid retrieval, the pure parts: the modes, how two rankings become one, and how a snippet's
highlights become safe HTML. The queries themselves are in documents.selectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from django.db import models

# Weighted reciprocal rank fusion: score = Σ weight / (RRF_K + rank). Chosen on bench/retrieval.py's
# 40 questions (answer in the top 5): RRF_K 10 with keyword at half weight 0.925, against 0.875 for
# vector alone, 0.75 for keyword alone and 0.85-0.875 for equal weights with RRF_K 5-100. A small
# RRF_K lets the first few ranks decide; the half weight keeps exact-word matches from pushing out
# passages that answer in other words.
RRF_K = 10
VECTOR_WEIGHT = 1.0
KEYWORD_WEIGHT = 0.5
# Each ranking contributes this many candidates per requested hit (at least MIN_CANDIDATES), so a
# passage ranked 15th by one and 3rd by the other still meets in the fusion.
CANDIDATES_PER_HIT = 4
MIN_CANDIDATES = 20
# ts_headline marks matches with these; they are turned into <mark> after the text is escaped.
HIGHLIGHT_START, HIGHLIGHT_STOP = "\u0002", "\u0003"


class SearchMode(models.TextChoices):
    HYBRID = "hybrid"
    VECTOR = "vector"
    KEYWORD = "keyword"


@dataclass
class SearchHit:
    document_id: str
    title: str
    chunk_index: int
    page: int | None
    text: str
    score: float
    snippet: str = ""
    found_by: list[str] = field(default_factory=list)
    vector_rank: int | None = None
    vector_score: float | None = None
    keyword_rank: int | None = None
    keyword_score: float | None = None


def candidates_for(k: int) -> int:
    return max(k * CANDIDATES_PER_HIT, MIN_CANDIDATES)


def ranks_fuse(*, vector: list, keyword: list, k: int, rrf_k: int = RRF_K) -> list[tuple]:
    """The k best keys of two rankings (each a list of (key, score), best first) by weighted
    reciprocal rank fusion, as (key, fused score). Ties keep the vector ranking's order, then the
    keyword one's."""
    fused: dict = {}
    for weight, ranking in ((VECTOR_WEIGHT, vector), (KEYWORD_WEIGHT, keyword)):
        for rank, (key, _score) in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + weight / (rrf_k + rank)
    order = {key: position for position, key in enumerate(dict.fromkeys([key for key, _ in vector + keyword]))}
    best = sorted(fused.items(), key=lambda item: (-item[1], order[item[0]]))
    return best[:k]


def snippet_html(marked: str) -> str:
    """A ts_headline fragment (matches between the highlight markers) as HTML with <mark>…</mark>;
    everything else escaped, so a document's own markup can never reach a page as markup."""
    return escape(marked).replace(HIGHLIGHT_START, "<mark>").replace(HIGHLIGHT_STOP, "</mark>")
