"""Search through the real pipeline: three modes, what each hit says, snippets, NFKC text."""

import pytest
from django.db import transaction

from documents.models import Document, DocumentStatus
from documents.selectors import chunks_search
from documents.services import document_upload
from tests.factories import UserFactory
from tests.support.files import upload
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_NOTES = ("Eviction. When memory is full, the maxmemory-policy setting decides what goes: allkeys-lru "
               "evicts the least recently used keys, noeviction refuses writes with an error.")
GARDEN = "Water tomatoes deeply twice a week; shallow watering keeps their roots near the surface."
LIGATURES = "The conﬁguration ﬁle is reread on SIGHUP, so a ﬂag changes without a restart."


def ingest(user, name, data) -> Document:
    with transaction.atomic():
        document, _ = document_upload(owner=user, upload=upload(name, data), title=name)
    wait_until(lambda: Document.objects.get(id=document.id).status == DocumentStatus.READY, timeout=120,
               message=f"{name} ready")
    return document


@pytest.fixture
def library(celery_worker):
    user = UserFactory()
    return user, {name: ingest(user, name, data) for name, data in (
        ("redis.txt", REDIS_NOTES.encode()), ("garden.txt", GARDEN.encode()),
        ("ligatures.txt", LIGATURES.encode()),
    )}


def test_three_modes_each_say_which_ranking_found_the_passage(library):
    user, documents = library
    keyword = chunks_search(user=user, query="maxmemory-policy", mode="keyword", k=3)
    assert keyword[0].document_id == str(documents["redis.txt"].id)
    assert keyword[0].found_by == ["keyword"] and keyword[0].keyword_rank == 1 and keyword[0].vector_rank is None
    assert "<mark>maxmemory-policy</mark>" in keyword[0].snippet or "<mark>maxmemory</mark>" in keyword[0].snippet

    vector = chunks_search(user=user, query="how often should I irrigate my vegetables", mode="vector", k=3)
    assert vector[0].document_id == str(documents["garden.txt"].id)
    assert all(hit.found_by == ["vector"] and hit.keyword_rank is None for hit in vector)
    assert [hit.vector_rank for hit in vector] == [1, 2, 3]

    hybrid = chunks_search(user=user, query="what does the maxmemory-policy setting do when memory is full", k=3)
    assert hybrid[0].document_id == str(documents["redis.txt"].id)
    assert hybrid[0].found_by == ["vector", "keyword"] and hybrid[0].vector_rank and hybrid[0].keyword_rank
    assert hybrid[0].score > hybrid[-1].score
    # Words only the garden note shares with nothing: keyword alone finds nothing else.
    assert {hit.document_id for hit in chunks_search(user=user, query="tomatoes", mode="keyword")} == {
        str(documents["garden.txt"].id)}


def test_ligatures_are_searchable_as_plain_words(library):
    user, documents = library
    hits = chunks_search(user=user, query="configuration file flag", mode="keyword")
    assert hits and hits[0].document_id == str(documents["ligatures.txt"].id)
    assert "configuration file" in hits[0].text and "<mark>" in hits[0].snippet


def test_query_syntax_is_just_words(library):
    user, _ = library
    for query in ("!!! & | <-> :*", "'; DROP TABLE documents_chunk; --", "the of and"):
        assert chunks_search(user=user, query=query, mode="keyword") == []
    assert chunks_search(user=user, query="noeviction & | !", mode="keyword")


def test_word_counts_follow_ingestion_reprocessing_and_deletion(celery_worker):
    from documents.models import LexemeStat
    from documents.services import document_delete, document_reprocess

    user = UserFactory()
    garden = ingest(user, "garden.txt", GARDEN.encode())
    second = ingest(user, "more.txt", b"Tomatoes ripen faster in a greenhouse.")

    def tomato_chunks():
        return LexemeStat.objects.filter(owner=user, lexeme="tomato").values_list("chunks", flat=True).first()

    assert tomato_chunks() == 2
    with transaction.atomic():
        document_reprocess(document=Document.objects.get(id=garden.id))
    wait_until(lambda: Document.objects.get(id=garden.id).run.status == "SUCCESS", timeout=120,
               message="reprocessed")
    assert tomato_chunks() == 2  # replaced, not added again
    with transaction.atomic():
        document_delete(document=Document.objects.get(id=second.id))
    assert tomato_chunks() == 1
    with transaction.atomic():
        document_delete(document=Document.objects.get(id=garden.id))
    assert tomato_chunks() is None and not LexemeStat.objects.filter(owner=user).exists()
