"""Pipeline faults through a real worker: redelivery and cancel."""

import time

import pytest
from django.db import transaction

from documents import services
from documents.models import Chunk, Document, PendingChunk
from jobs.models import RUNNING_STATUSES, JobRun, JobRunLogEntry
from jobs.services.runs import run_dispatch
from jobs.services.steering import run_cancel
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


# Long enough for several committed batches of embeddings (documents.services.INGEST_COMMIT_CHUNKS).
BATCHES_TEXT = "\n\n".join(
    f"Entry {i}: the lighthouse keeper records the wind, the swell and every passing ship in a ledger that "
    f"the harbour office collects each spring, with notes on fog, the lamp's oil and gulls near buoy {i}."
    for i in range(300)
).encode()


def chunk_rows(document) -> list[tuple]:
    return list(Chunk.objects.filter(document=document).order_by("chunk_index")
                .values_list("chunk_index", "page", "char_start", "char_end", "text"))


def embeddings(document):
    import numpy

    return numpy.array([list(v) for v in Chunk.objects.filter(document=document).order_by("chunk_index")
                        .values_list("embedding", flat=True)])


def upload_until_checkpoint(user, data: bytes) -> Document:
    """Uploaded, and caught with a batch of its embeddings kept, early in embedding the next one: its
    worker holds it until that batch ends (a slice is handed back only between batches)."""
    with transaction.atomic():
        document, _ = services.document_upload(owner=user, upload=upload("ledger.txt", data))

    def caught() -> bool:
        run = JobRun.objects.get(id=document.run_id)
        kept = run.checkpoints.get("embedded", 0)
        return (kept >= services.INGEST_COMMIT_CHUNKS and run.status == "PROGRESS"
                and run.progress_current - kept <= services.INGEST_COMMIT_CHUNKS // 3
                and run.progress_total - kept > services.INGEST_COMMIT_CHUNKS // 2)

    wait_until(caught, timeout=120, interval=0.05, message="a kept batch and a fresh slice")
    return document


def stopped_holding_its_run(*, stop, resume) -> tuple[Document, JobRun]:
    """Uploaded, caught mid-ingestion, and its worker stopped (`stop`: killed or paused) while it
    holds the run. A worker caught at the very end of its slice may have handed the run back as it
    was stopped (nothing is then held to take over): it is let go (`resume`), and another document
    tried."""
    for _ in range(3):
        document = upload_until_checkpoint(UserFactory(), BATCHES_TEXT)
        stop()
        time.sleep(0.2)  # a statement the worker had already sent lands
        run = JobRun.objects.get(id=document.run_id)
        if run.status in RUNNING_STATUSES:
            return document, run
        resume()
        wait_until(lambda document=document: Document.objects.get(id=document.id).status == "ready",
                   timeout=180, interval=0.5, message="the document caught between slices to finish")
    raise AssertionError("the worker had handed its run back each of three times it was stopped")


def reaped(run_id, timeout: float = 30) -> None:
    """The watchdog's takeover (the service it runs), until it has re-queued this run."""
    from jobs.services.maintenance import runs_reap_stale

    wait_until(lambda: runs_reap_stale()["requeued"] and JobRun.objects.get(id=run_id).attempt_log,
               timeout=timeout, interval=0.5, message="the run to be taken over")


def log_lines(run_id, starting: str) -> list[str]:
    return [m for m in JobRunLogEntry.objects.filter(run_id=run_id).values_list("message", flat=True)
            if m.startswith(starting)]


def test_a_killed_ingestion_is_taken_over_within_a_minute_and_resumes_at_its_checkpoint(celery_worker):
    """SIGKILL of the whole worker mid-embedding: taken over within a minute (not at the hard limit's
    horizon), progress never goes back, no kept batch is embedded again, the text is extracted once,
    and the chunks (texts, offsets, vectors) are those of an uninterrupted ingestion of the file."""
    import numpy
    from django.utils import timezone
    from django.utils.dateparse import parse_datetime

    clean = services.document_upload(owner=UserFactory(), upload=upload("ledger.txt", BATCHES_TEXT))[0]
    wait_until(lambda: Document.objects.get(id=clean.id).status == "ready", timeout=180, message="the clean run")

    # The whole worker, main process and pool, as on a lost machine.
    document, lost = stopped_holding_its_run(stop=celery_worker.kill, resume=celery_worker.start)
    killed = timezone.now()
    kept = lost.checkpoints["embedded"]
    celery_worker.start()
    reaped(document.run_id)
    seen = []
    while Document.objects.get(id=document.id).status != "ready":
        seen.append(JobRun.objects.get(id=document.run_id).progress_current)
        assert len(seen) < 1800, "the ingestion did not finish within three minutes"
        time.sleep(0.1)

    run = JobRun.objects.get(id=document.run_id)
    total = run.result["chunks"]
    assert run.status == "SUCCESS" and run.attempts == 2 and kept < total
    assert [entry["event"] for entry in run.attempt_log] == ["worker lost"]
    assert (parse_datetime(run.attempt_log[0]["at"]) - killed).total_seconds() < 60
    assert min(seen) >= kept  # never back to zero, nor below what was kept
    # Every slice and attempt starts where the last committed batch ended, never before it: no
    # committed batch is embedded twice (an attempt cut short before its next commit starts again
    # at the same point, which the short test heartbeats make happen on a busy machine).
    resumed = [int(line.split()[3]) for line in log_lines(run.id, "Resumed at chunk")]
    assert kept in resumed and resumed == sorted(resumed)
    assert len(log_lines(run.id, "Extracted")) == 1 and len(log_lines(run.id, "Split into")) == 1
    assert chunk_rows(document) == chunk_rows(clean)
    assert numpy.allclose(embeddings(document), embeddings(clean), atol=1e-5)
    assert not PendingChunk.objects.filter(run_id=run.id).exists()


def test_a_worker_paused_mid_ingestion_past_its_heartbeat_finishes_the_run_once_it_wakes(celery_worker):
    """SIGSTOP, as a long GC pause, a frozen VM or a partition looks: the run is taken over while the
    worker sleeps; on waking, the old attempt finds it holds no lease, writes nothing, and the same
    worker resumes the run from its checkpoint. Nobody cancelled it, so it never ends REVOKED."""
    import os
    import signal

    def pause():
        os.killpg(celery_worker.proc.pid, signal.SIGSTOP)

    def wake():
        os.killpg(celery_worker.proc.pid, signal.SIGCONT)

    document, paused = stopped_holding_its_run(stop=pause, resume=wake)
    try:
        reaped(paused.id)  # by the watchdog's service, as another machine would
    finally:
        wake()
    wait_until(lambda: Document.objects.get(id=document.id).status == "ready", timeout=180, interval=0.5,
               message="the ingestion to finish")
    run = JobRun.objects.get(id=paused.id)
    assert run.status == "SUCCESS" and not run.cancel_requested
    assert [e["event"] for e in run.attempt_log] == ["worker lost"]
    assert run.lease > paused.lease  # taken over, then the slices after
    # Where it wakes decides how it learns: at its next checkpoint, at the release after the server
    # ended the transaction it slept in, or when its error or outcome is refused. Each says so, and
    # may say it after the run has finished: woken mid-batch, it learns at that batch's checkpoint.
    def lost_said() -> bool:
        return any(r["message"].startswith("attempt lost its run to a takeover")
                   for r in celery_worker.log_records(run_id=str(run.id)))

    try:
        wait_until(lost_said, timeout=60, interval=0.5, message="the woken attempt to say it lost the run")
    except AssertionError:
        records = celery_worker.log_records(run_id=str(run.id))
        raise AssertionError("\n".join(f'{r.get("lease")} {r["message"]}' for r in records)) from None
    assert Chunk.objects.filter(document=document).count() == run.result["chunks"]


def test_a_document_longer_than_one_slice_interleaves_with_another_users(celery_worker):
    """Alice's two long documents take both slots of the worker; bob's small one, uploaded after,
    is ready while both of hers still ingest (each yields its slot after INGEST_SLICE_SECONDS and
    goes in line behind him), and hers still finish, every slice resuming where the last ended."""
    alice = UserFactory()
    with transaction.atomic():
        long_ones = [services.document_upload(owner=alice, upload=upload(f"delta-{n}.txt",
                                                                      LONG_TEXT * 2 + f"\n\nCopy {n}.".encode()))[0]
                     for n in range(2)]
    for document in long_ones:
        wait_embedding(document.run_id)
    with transaction.atomic():
        small, _ = services.document_upload(owner=UserFactory(), upload=upload("memo.txt", b"Buy rope.\n"))
    posted = time.monotonic()
    wait_until(lambda: Document.objects.get(id=small.id).status == "ready", timeout=60, interval=0.1,
               message="the small document to be ready")
    assert time.monotonic() - posted < 60
    assert not JobRun.objects.filter(id__in=[d.run_id for d in long_ones],
                                     status__in=("SUCCESS", "FAILURE", "REVOKED")).exists()
    for document in long_ones:
        wait_until(lambda document=document: Document.objects.get(id=document.id).status == "ready", timeout=180,
                   interval=0.5, message="the long documents to finish")
        run = JobRun.objects.get(id=document.run_id)
        assert run.status == "SUCCESS" and run.attempts == 1  # slices are not attempts
        assert any("yielding the worker" in line for line in log_lines(run.id, "Embedded"))
        assert Chunk.objects.filter(document=document).count() == run.result["chunks"]


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


def test_the_cap_grows_with_the_document_and_never_falls_below_the_floor(settings):
    settings.INGEST_SECONDS_PER_MB, settings.INGEST_MIN_CAP_SECONDS = 1200, 900
    assert services.ingest_cap_seconds(size=10_000) == 900
    assert services.ingest_cap_seconds(size=5 * 1024 * 1024) == 6000
    assert services.ingest_cap_seconds(size=25 * 1024 * 1024) == 30000


@pytest.mark.django_db
def test_an_ingestion_that_worked_past_its_cap_fails_and_says_which_cap(settings):
    """In this process, on a run never published (its transaction is the test's, never committed)."""
    from core.errors import PermanentError
    from jobs import lifecycle
    from jobs.runner import WorkerRunContext

    settings.INGEST_MIN_CAP_SECONDS = 900
    document, _ = services.document_upload(owner=UserFactory(), upload=upload("cap.txt", b"A short note.\n"))
    ctx = WorkerRunContext.from_claim(run_id=str(document.run_id),
                                      claim=lifecycle.run_claim(run_id=str(document.run_id), worker="here:1"))
    ctx.checkpoints["worked_seconds"] = 901.0
    with pytest.raises(PermanentError, match=r"worked 901 s in all, over the cap of 900 s for a document of 14 bytes"):
        services.document_ingest(document_id=str(document.id), ctx=ctx)


# --- the body service itself, called with a fake run context (no worker) -----------------------

# Inside one transaction that is never committed, so no ingestion message is ever published: a
# worker left running by an earlier test must not ingest the same document meanwhile.
IN_ONE_TRANSACTION = pytest.mark.django_db

def _uploaded(text: bytes, name: str = "delta.txt") -> Document:
    document, _ = services.document_upload(owner=UserFactory(), upload=upload(name, text))
    return document


@IN_ONE_TRANSACTION
def test_ingest_makes_a_searchable_document_reporting_every_stage():
    from documents.selectors import chunks_search
    from tests.support.run_context import FakeRunContext

    document = _uploaded(b"The ferrymen measure the channel depth at dawn.\n\n" * 30)
    ctx = FakeRunContext(id=str(document.run_id))
    result = services.document_ingest(document_id=str(document.id), ctx=ctx)

    document.refresh_from_db()
    assert document.status == "ready" and result == {"chunks": document.chunk_count, "pages": None}
    assert Chunk.objects.filter(document=document).count() == document.chunk_count > 0
    assert not PendingChunk.objects.filter(document=document).exists()
    assert [step for _, _, step in ctx.reports][:3] == ["extracting", "chunking", "embedding"]
    assert ctx.reports[-1] == (document.chunk_count, document.chunk_count, "indexing")
    # Each embedding checkpoint shows the chunks it keeps, whatever reports the throttle skipped.
    assert ctx.kept_progress == sorted(ctx.kept_progress) and ctx.kept_progress[-1] == document.chunk_count
    assert chunks_search(user=document.owner, query="channel depth at dawn", k=1)[0].document_id == str(document.id)


@IN_ONE_TRANSACTION
def test_each_chunk_keeps_the_embedding_of_its_own_text_though_the_model_sees_them_shortest_first():
    import numpy as np

    from documents.pipeline.embed import texts_embed
    from tests.support.run_context import FakeRunContext

    topics = ["ferry timetables", "glacier ice cores", "sourdough starters", "railway signals", "bee colonies",
              "tidal charts", "volcanic soil", "orbital debris", "wind turbines", "medieval ledgers"]
    paragraphs = [f"{topic.capitalize()}: " + " ".join(f"the {topic} record {i}." for i in range((n * 13) % 60 + 1))
                  for n, topic in enumerate(topics * 3)]
    document = _uploaded("\n\n".join(paragraphs).encode())
    services.document_ingest(document_id=str(document.id), ctx=FakeRunContext(id=str(document.run_id)))

    chunks = list(Chunk.objects.filter(document=document).order_by("chunk_index"))
    lengths = [len(chunk.text) for chunk in chunks]
    assert lengths != sorted(lengths)  # the model saw them in another order than the document's
    expected = texts_embed([chunk.text for chunk in chunks])
    for chunk, vector in zip(chunks, expected):
        assert float(np.dot(np.asarray(chunk.embedding), vector)) > 0.999, chunk.chunk_index


@IN_ONE_TRANSACTION
def test_a_cancelled_ingestion_indexes_nothing_and_the_next_attempt_resumes_from_its_steps():
    from jobs.errors import RunCancelled
    from tests.support.run_context import FakeRunContext

    document = _uploaded(b"Sandbars move with the season's currents.\n\n" * 30)
    first = FakeRunContext(id=str(document.run_id), cancel_at_report=3)  # extracting, chunking, embedding
    with pytest.raises(RunCancelled):
        services.document_ingest(document_id=str(document.id), ctx=first)
    assert not Chunk.objects.filter(document=document).exists()
    assert Document.objects.get(id=document.id).status != "ready"
    assert {"extracted", "chunked"} <= set(first.checkpoints)

    second = FakeRunContext(id=str(document.run_id), attempt=2, checkpoints=dict(first.checkpoints))
    services.document_ingest(document_id=str(document.id), ctx=second)
    assert Document.objects.get(id=document.id).status == "ready"
    # Neither the text nor the chunks were made again: the second attempt began at embedding.
    assert second.reports[0][2] == "embedding"
    assert Chunk.objects.filter(document=document).count() == first.checkpoints["chunked"]


@IN_ONE_TRANSACTION
def test_an_ingestion_of_a_deleted_document_is_skipped():
    from tests.support.run_context import FakeRunContext

    assert services.document_ingest(document_id="00000000-0000-0000-0000-000000000000",
                                    ctx=FakeRunContext()) == {"skipped": "document deleted"}
