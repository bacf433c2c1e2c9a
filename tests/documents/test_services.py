"""Pipeline faults through a real worker: redelivery and cancel."""

import pytest
from django.db import transaction

from documents import services
from documents.models import Chunk, Document
from jobs.models import JobRun
from jobs.services.runs import run_cancel, run_dispatch
from tests.factories import UserFactory
from tests.support.files import upload
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

LONG_TEXT = "\n\n".join(
    f"Paragraph {i}: the river delta shifts its channels every season, and the ferrymen keep a log of depths "
    f"measured at dawn, noting sandbars, currents and the colour of the water near marker {i}." for i in range(400)
).encode()


def test_a_redelivered_ingestion_leaves_one_set_of_chunks(celery_worker):
    user = UserFactory()
    document, _ = services.document_upload(owner=user, upload=upload("notes.txt", b"Short note on tides.\n" * 20))
    wait_until(lambda: Document.objects.get(id=document.id).status == "ready", timeout=120, message="ready")
    count = Chunk.objects.filter(document=document).count()
    # A reprocess, and a duplicate delivery of its message, as a lost ack would cause.
    run = services.document_reprocess(document=Document.objects.get(id=document.id))
    run_dispatch(run=JobRun.objects.get(id=run.id))
    wait_until(lambda: JobRun.objects.get(id=run.id).status == "SUCCESS", timeout=120, message="reprocess")
    assert Chunk.objects.filter(document=document).count() == count
    assert list(Chunk.objects.filter(document=document).values_list("chunk_index", flat=True)) == list(range(count))


def wait_embedding(run_id) -> None:
    wait_until(lambda: JobRun.objects.get(id=run_id).progress_step == "embedding"
               and JobRun.objects.get(id=run_id).progress_current > 0, timeout=120, interval=0.05,
               message="embedding to start")


def upload_until_embedding(user=None) -> Document:
    """A long document, uploaded and caught in the middle of its embedding."""
    with transaction.atomic():
        document, _ = services.document_upload(owner=user or UserFactory(), upload=upload("delta.txt", LONG_TEXT))
    wait_embedding(document.run_id)
    return document


def test_cancel_during_embedding_ends_cancelled_with_no_chunks(celery_worker):
    document = upload_until_embedding()
    run_id = document.run_id
    run_cancel(run=JobRun.objects.get(id=run_id))
    wait_until(lambda: Document.objects.get(id=document.id).status == "cancelled", timeout=30, message="cancelled")
    assert JobRun.objects.get(id=run_id).status == "REVOKED"
    assert Chunk.objects.filter(document=document).count() == 0


def test_a_worker_killed_mid_ingestion_is_taken_over_within_a_minute_with_one_set_of_chunks(celery_worker, beats):
    from django.utils import timezone
    from django.utils.dateparse import parse_datetime

    document = upload_until_embedding()
    run_id = document.run_id
    celery_worker.kill()  # the whole worker, main process and pool, as on a lost machine
    killed = timezone.now()
    celery_worker.start()
    beats("watchdog-beat")
    wait_until(lambda: Document.objects.get(id=document.id).status == "ready", timeout=120, interval=0.5,
               message="the ingestion to resume and finish")
    run = JobRun.objects.get(id=run_id)
    assert run.status == "SUCCESS" and run.attempts == 2
    assert [entry["event"] for entry in run.attempt_log] == ["worker lost"]
    # Taken over within a minute of the kill, not at the hard limit's horizon (15 minutes).
    assert (parse_datetime(run.attempt_log[0]["at"]) - killed).total_seconds() < 60
    count = Chunk.objects.filter(document=document).count()
    assert count == Document.objects.get(id=document.id).chunk_count > 0
    assert list(Chunk.objects.filter(document=document).order_by("chunk_index")
                .values_list("chunk_index", flat=True)) == list(range(count))


def test_cancelling_a_reprocess_keeps_the_earlier_chunks_searchable(celery_worker):
    from documents.selectors import chunks_search

    user = UserFactory()
    with transaction.atomic():
        document, _ = services.document_upload(owner=user, upload=upload("delta.txt", LONG_TEXT))
    wait_until(lambda: Document.objects.get(id=document.id).status == "ready", timeout=120, message="ready")
    count = Chunk.objects.filter(document=document).count()
    with transaction.atomic():
        run = services.document_reprocess(document=Document.objects.get(id=document.id))
    wait_embedding(run.id)
    run_cancel(run=JobRun.objects.get(id=run.id))
    wait_until(lambda: JobRun.objects.get(id=run.id).status == "REVOKED", timeout=30, message="revoked")
    assert Document.objects.get(id=document.id).status == "ready"
    assert Chunk.objects.filter(document=document).count() == count
    assert chunks_search(user=user, query="ferrymen log depths at dawn", k=3)


def test_one_users_batch_does_not_hold_up_another_users_upload(celery_worker):
    alice, bob = UserFactory(), UserFactory()
    batch = []
    for n in range(20):
        with transaction.atomic():
            document, _ = services.document_upload(owner=alice, upload=upload(
                f"log-{n}.txt", f"Harbour log {n}: the tide turned at {n} past the hour, calm water.".encode()))
        batch.append(document.id)
    with transaction.atomic():
        bobs, _ = services.document_upload(owner=bob, upload=upload("bob.txt", b"Bob's note on the lighthouse."))
    wait_until(lambda: Document.objects.get(id=bobs.id).status == "ready", timeout=120, interval=0.2,
               message="the other user's document")
    still_waiting = Document.objects.filter(id__in=batch).exclude(status="ready").count()
    assert still_waiting >= 10, "the other user's upload went through before most of the batch"
    wait_until(lambda: Document.objects.filter(id__in=batch, status="ready").count() == 20, timeout=180,
               interval=0.5, message="the whole batch, published turn by turn")
