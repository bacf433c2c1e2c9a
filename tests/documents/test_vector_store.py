"""VECTOR_STORE=pinecone against a local server speaking Pinecone's data plane: ingestion upserts,
re-ingestion replaces, deletion deletes, search filters by owner and joins to our chunks, and an
outage during ingestion is retried like any transient error."""

import pytest
from django.db import transaction

from core.errors import PermanentError, TransientError
from documents.models import EMBEDDING_DIMENSIONS, Document, DocumentStatus
from documents.selectors import chunks_search
from documents.services import document_delete, document_reprocess, document_upload
from documents.vector_store import vector_store
from integrations.pinecone import PineconeStore, pinecone_vector_id
from jobs.models import JobRun
from tests.factories import UserFactory
from tests.support import worker as worker_support
from tests.support.fake_pinecone import FakePinecone
from tests.support.files import upload
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

NAMESPACE = "tests"
NOTES = ("The harbour master keeps the tide tables. Spring tides come twice a month, at new and full moon. "
         "Neap tides fall between them, when the sun and moon pull at right angles.")


@pytest.fixture
def pinecone_server():
    server = FakePinecone()
    yield server
    server.stop()


@pytest.fixture
def pinecone_settings(settings, pinecone_server):
    settings.VECTOR_STORE = "pinecone"
    settings.PINECONE_API_KEY = pinecone_server.api_key
    settings.PINECONE_INDEX_HOST = pinecone_server.url
    settings.PINECONE_NAMESPACE = NAMESPACE
    vector_store.cache_clear()
    yield settings
    vector_store.cache_clear()


@pytest.fixture
def pinecone_worker(celery_worker, pinecone_server):
    """A worker whose vector store is the local Pinecone (the session's worker steps aside)."""
    celery_worker.stop()
    proc = worker_support.worker("pinecone-worker", VECTOR_STORE="pinecone", PINECONE_API_KEY=pinecone_server.api_key,
                                 PINECONE_INDEX_HOST=pinecone_server.url, PINECONE_NAMESPACE=NAMESPACE).start()
    worker_support.wait_for_worker("pinecone-worker", timeout=90)
    yield proc
    proc.stop()


def _ready(document_id, *, after_run=None) -> Document:
    def ready():
        document = Document.objects.get(id=document_id)
        assert document.status not in (DocumentStatus.FAILED, DocumentStatus.CANCELLED), document.error
        return document.status == DocumentStatus.READY and (after_run is None or document.run_id != after_run) \
            and document
    return wait_until(ready, timeout=120, message="document ready")


def test_ingest_search_reingest_and_delete_through_pinecone(pinecone_worker, pinecone_server, pinecone_settings):
    owner, stranger = UserFactory(), UserFactory()
    with transaction.atomic():
        document, _ = document_upload(owner=owner, upload=upload("tides.txt", NOTES.encode()), title="Tides")
    document = _ready(document.id)
    stored = pinecone_server.vectors(NAMESPACE)
    ids = [pinecone_vector_id(str(document.id), i) for i in range(document.chunk_count)]
    assert sorted(stored) == sorted(ids)
    assert stored[ids[0]]["metadata"] == {"owner": owner.id, "document": str(document.id)}

    hits = chunks_search(user=owner, query="when do spring tides happen", mode="vector")
    assert hits and hits[0].document_id == str(document.id) and hits[0].found_by == ["vector"]
    query = [body for path, body in pinecone_server.requests if path == "/query"][-1]
    assert query["filter"] == {"owner": {"$eq": owner.id}} and query["namespace"] == NAMESPACE
    assert chunks_search(user=stranger, query="when do spring tides happen") == []
    hybrid = chunks_search(user=owner, query="neap tides right angles")
    assert hybrid[0].found_by == ["vector", "keyword"]  # the keyword half still comes from PostgreSQL

    # Pinecone is down for a while mid-ingestion: the run retries and the vectors end up right.
    pinecone_server.fail_next(6, status=503)
    previous_run = document.run_id
    with transaction.atomic():
        run = document_reprocess(document=document)
    _ready(document.id, after_run=previous_run)
    assert JobRun.objects.get(id=run.id).attempts >= 2
    assert sorted(pinecone_server.vectors(NAMESPACE)) == sorted(ids)

    with transaction.atomic():
        document_delete(document=Document.objects.get(id=document.id))
    assert pinecone_server.vectors(NAMESPACE) == {}


def test_pinecone_errors_become_transient_or_permanent(pinecone_server):
    store = PineconeStore(api_key=pinecone_server.api_key, host=pinecone_server.url, namespace=NAMESPACE, timeout=5,
                          dimensions=EMBEDDING_DIMENSIONS)
    pinecone_server.fail_next(4, status=429, retry_after="0")  # more than the client's own retries
    with pytest.raises(TransientError):
        store.nearest(owner_id=1, vector=[0.1] * 384, n=3)
    pinecone_server.fail_next(1, status=200, garbage=True)  # an unreadable answer is not retried by the client
    with pytest.raises(TransientError):
        store.nearest(owner_id=1, vector=[0.1] * 384, n=3)
    wrong_key = PineconeStore(api_key="not-the-key", host=pinecone_server.url, namespace=NAMESPACE, timeout=5,
                              dimensions=EMBEDDING_DIMENSIONS)
    with pytest.raises(PermanentError):
        wrong_key.nearest(owner_id=1, vector=[0.1] * 384, n=3)
    with pytest.raises(PermanentError):  # the index's dimension is not ours
        store.document_replace(document_id="d", owner_id=1, chunks=[(0, None)], vectors=[[0.1] * 3], previous_count=0)


def test_health_reports_the_pinecone_index(pinecone_server, pinecone_settings):
    from core.health import health_report

    report, _ = health_report()
    assert report["checks"]["vector_store"]["status"] == "ok"
    assert "0 vectors in 'tests'" in report["checks"]["vector_store"]["detail"]
    pinecone_server.dimension = 768  # an index made for another model
    report, _ = health_report()
    assert report["checks"]["vector_store"]["status"] == "error" and report["status"] != "ok"
    assert "768-dimension" in report["checks"]["vector_store"]["detail"]
