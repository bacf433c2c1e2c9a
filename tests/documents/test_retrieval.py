"""The pure parts of hybrid retrieval: fusion and snippets."""

from documents.retrieval import KEYWORD_WEIGHT, RRF_K, VECTOR_WEIGHT, candidates_for, ranks_fuse, snippet_html


def test_a_passage_both_rankings_like_beats_one_only_ranking_liked_first():
    vector = [("a", 0.9), ("b", 0.8), ("c", 0.7)]
    keyword = [("d", 3.0), ("b", 2.0), ("e", 1.0)]
    fused = ranks_fuse(vector=vector, keyword=keyword, k=3)
    assert [key for key, _ in fused] == ["b", "a", "c"]
    assert fused[0][1] == (VECTOR_WEIGHT + KEYWORD_WEIGHT) / (RRF_K + 2)


def test_at_equal_rank_meaning_outweighs_words_and_k_limits():
    fused = ranks_fuse(vector=[("a", 1), ("b", 1)], keyword=[("c", 1), ("d", 1)], k=3)
    assert [key for key, _ in fused] == ["a", "b", "c"]
    assert ranks_fuse(vector=[], keyword=[], k=5) == []


def test_candidates_grow_with_k_from_a_floor():
    assert candidates_for(1) == 20 and candidates_for(10) == 40


def test_snippet_marks_matches_and_escapes_the_document():
    marked = "use \u0002maxmemory\u0003 <script>alert(1)</script> & more"
    assert snippet_html(marked) == "use <mark>maxmemory</mark> &lt;script&gt;alert(1)&lt;/script&gt; &amp; more"
