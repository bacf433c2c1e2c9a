"""Writes for documents: upload, the ingestion pipeline, reprocess, delete, maintenance."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from core.errors import ErrorCode, PermanentError, TransientError
from documents.errors import DocumentsError
from documents.models import Chunk, Document, DocumentStage, DocumentStatus, DocumentText, PendingChunk
from documents.pipeline.bounded import text_extract_bounded
from documents.pipeline.chunk import chunker_warm_up, text_chunk
from documents.pipeline.detect import format_detect, name_check
from documents.pipeline.embed import embed_batch_size, embeddings_warm_up, texts_embed
from documents.pipeline.extract import Page
from documents.vector_store import vector_store
from integrations.http import ServiceMisconfigured
from integrations.storage import storage_errors_sorted
from jobs.public import FINISHED_STATUSES, JobRun, RunContext, TriggeredBy, run_cancel, run_enqueue

logger = logging.getLogger(__name__)

INGEST_KIND = "documents.ingest"
# Rows per INSERT when indexing: large batches amortise round trips; bounded to keep statements small.
INDEX_BATCH_SIZE = 500
# A document still waiting this long after upload, with no live run, is dispatched again by maintenance.
STUCK_AFTER = timedelta(minutes=10)
# A stored file with no document row may be an upload whose transaction has not committed yet.
ORPHAN_MIN_AGE = timedelta(hours=1)


def document_upload(*, owner, upload, title: str = "", triggered_by: str = TriggeredBy.API) -> tuple[Document, bool]:
    """Store an upload and queue its ingestion. Returns (document, created); the same content
    uploaded again by the same owner returns the existing document."""
    size = upload.size or 0
    if size > settings.DOCUMENT_MAX_BYTES:
        raise DocumentsError(f"The file is {size} bytes; the limit is {settings.DOCUMENT_MAX_BYTES} bytes "
                             "(DOCUMENT_MAX_BYTES).", code=ErrorCode.TOO_LARGE, field="file")
    data = upload.read(settings.DOCUMENT_MAX_BYTES + 1)
    if len(data) > settings.DOCUMENT_MAX_BYTES:
        raise DocumentsError("The file is over the size limit.", code=ErrorCode.TOO_LARGE, field="file")
    if not data:
        raise DocumentsError("The file is empty.", field="file")
    fmt = format_detect(data=data)
    name = name_check(name=upload.name or "", detected=fmt)
    sha256 = hashlib.sha256(data).hexdigest()
    existing = Document.objects.filter(owner=owner, sha256=sha256).first()
    if existing:
        return existing, False
    _quota_check(owner=owner, size=len(data))

    document = Document(owner=owner, title=(title or name)[:300], original_name=name[:255], format=fmt,
                        size=len(data), sha256=sha256, status=DocumentStatus.QUEUED)
    _original_store(document=document, data=data)
    try:
        with transaction.atomic():
            document.save()
            _ingest_enqueue(document=document, triggered_by=triggered_by)
    except IntegrityError:
        # The same content uploaded twice at once: the other request won; answer with its document.
        default_storage.delete(document.file.name)
        return Document.objects.get(owner=owner, sha256=sha256), False
    except Exception:
        # Nothing accepted, nothing kept: the stored file goes with the failed transaction.
        default_storage.delete(document.file.name)
        raise
    return document, True


def _original_store(*, document: Document, data: bytes) -> None:
    """Keep the upload in the file storage; a storage that refuses it answers 503, and the operator's
    log names the setting to fix (the client is not told how the storage is configured)."""
    try:
        with storage_errors_sorted():
            document.file.save("original", ContentFile(data), save=False)
    except (ServiceMisconfigured, TransientError) as exc:
        logger.error("upload not stored", extra={"cause": str(exc), "setting": getattr(exc, "setting", "")})
        raise DocumentsError("The file storage is not accepting uploads; try again later.",
                             code=ErrorCode.UNAVAILABLE, retry_after=IN_FLIGHT_RETRY_AFTER_SECONDS)


IN_FLIGHT_STATUSES = (DocumentStatus.UPLOADED, DocumentStatus.QUEUED, DocumentStatus.PROCESSING)
# How long to suggest waiting when too many documents are in flight.
IN_FLIGHT_RETRY_AFTER_SECONDS = 30


def _quota_check(*, owner, size: int) -> None:
    """Per-user caps, so one user's batch cannot hold the ingestion of everyone else."""
    in_flight = Document.objects.filter(owner=owner, status__in=IN_FLIGHT_STATUSES).count()
    if in_flight >= settings.DOCUMENT_MAX_IN_FLIGHT:
        raise DocumentsError(f"You have {in_flight} documents still being processed; the limit is "
                             f"{settings.DOCUMENT_MAX_IN_FLIGHT} (DOCUMENT_MAX_IN_FLIGHT). Upload more when some are ready.",
                             code=ErrorCode.THROTTLED, retry_after=IN_FLIGHT_RETRY_AFTER_SECONDS)
    since = timezone.now() - timedelta(days=1)
    recent = Document.objects.filter(owner=owner, created_at__gte=since)
    uploaded = recent.aggregate(total=Sum("size"))["total"] or 0
    if uploaded + size > settings.DOCUMENT_MAX_BYTES_PER_DAY:
        oldest = recent.order_by("created_at").values_list("created_at", flat=True).first() or timezone.now()
        wait = max(60, int((oldest + timedelta(days=1) - timezone.now()).total_seconds()))
        raise DocumentsError(f"This upload would bring you to {uploaded + size} bytes in 24 hours; the limit is "
                             f"{settings.DOCUMENT_MAX_BYTES_PER_DAY} (DOCUMENT_MAX_BYTES_PER_DAY).",
                             code=ErrorCode.THROTTLED, retry_after=wait)


def _ingest_enqueue(*, document: Document, triggered_by: str) -> JobRun:
    run = run_enqueue(kind=INGEST_KIND, args={"document_id": str(document.id)}, owner=document.owner,
                      triggered_by=triggered_by)
    Document.objects.filter(id=document.id).update(run=run, status=DocumentStatus.QUEUED, error="")
    document.run, document.status, document.error = run, DocumentStatus.QUEUED, ""
    return run


def document_reprocess(*, document: Document, triggered_by: str = TriggeredBy.API) -> JobRun:
    if document.run and document.run.status not in FINISHED_STATUSES:
        raise DocumentsError("The document is being processed; cancel that run first or wait for it.",
                             code=ErrorCode.CONFLICT)
    with transaction.atomic():
        return _ingest_enqueue(document=document, triggered_by=triggered_by)


def document_delete(*, document: Document) -> None:
    """Cancel a run in flight, then remove the chunks, the row and the stored file."""
    if document.run and document.run.status not in FINISHED_STATUSES:
        run_cancel(run=document.run)
    key, document_id, chunk_count = document.file.name, str(document.id), document.chunk_count or 0
    lexeme_stats_apply(document_id=document.id, owner_id=document.owner_id, sign=-1)
    document.delete()
    transaction.on_commit(lambda: default_storage.delete(key))
    transaction.on_commit(lambda: _vectors_delete(document_id=document_id, chunk_count=chunk_count))


def _vectors_delete(*, document_id: str, chunk_count: int) -> None:
    # A vector left behind by a failed delete is harmless: search joins hits to chunk rows.
    try:
        vector_store().document_delete(document_id=document_id, chunk_count=chunk_count)
    except Exception as exc:
        logger.warning("vectors of a deleted document not removed", extra={"document_id": document_id,
                                                                          "cause": str(exc)})


# ts_stat counts, for each word, the document's chunks that contain it.
_DOCUMENT_WORDS = "ts_stat(format('SELECT search_vector FROM documents_chunk WHERE document_id = %%L', %(document)s::uuid))"
_LEXEME_STATS_ADD_SQL = f"""
INSERT INTO documents_lexemestat (owner_id, lexeme, chunks)
SELECT %(owner)s, word, ndoc FROM {_DOCUMENT_WORDS}
ON CONFLICT (owner_id, lexeme) DO UPDATE SET chunks = documents_lexemestat.chunks + EXCLUDED.chunks"""
_LEXEME_STATS_SUBTRACT_SQL = f"""
UPDATE documents_lexemestat s SET chunks = greatest(s.chunks - c.ndoc, 0)
  FROM {_DOCUMENT_WORDS} c
 WHERE s.owner_id = %(owner)s AND s.lexeme = c.word"""
_LEXEME_STATS_FORGET_SQL = "DELETE FROM documents_lexemestat WHERE owner_id = %(owner)s AND chunks = 0"


def lexeme_stats_apply(*, document_id, owner_id: int, sign: int) -> None:
    """Add (+1) or take away (-1) the document's current chunks in its owner's word counts."""
    params = {"document": str(document_id), "owner": owner_id}
    with connection.cursor() as cursor:
        if sign > 0:
            cursor.execute(_LEXEME_STATS_ADD_SQL, params)
        else:
            cursor.execute(_LEXEME_STATS_SUBTRACT_SQL, params)
            cursor.execute(_LEXEME_STATS_FORGET_SQL, params)


def _stage(document: Document, stage: str) -> None:
    now = timezone.now()
    Document.objects.filter(id=document.id).update(stage=stage, **{f"{stage}_at": now})


def ingest_warm_up() -> None:
    """What an ingestion needs loaded: the embedding model and the chunker's tokenizer."""
    embeddings_warm_up()
    chunker_warm_up()


def ingest_cap_seconds(*, size: int) -> int:
    """How long an ingestion may work in all (its slices together) for a document of `size` bytes."""
    return int(max(settings.INGEST_MIN_CAP_SECONDS, settings.INGEST_SECONDS_PER_MB * size / (1024 * 1024)))


def document_ingest(*, document_id: str, ctx: RunContext) -> dict:
    """The pipeline: extracting → chunking → embedding → indexing, as one tracked run in steps.

    Each step keeps what it made, so any later attempt (after a kill, a takeover, a database outage,
    or a slice that yielded its worker) resumes after the last completed one: the text is extracted
    once per document and extractor version; the chunks are written to the run's pending chunks
    once; embeddings are committed INGEST_COMMIT_CHUNKS at a time. The final commit swaps the pending
    chunks for the document's searchable ones in one transaction (with the run's success, and only
    if it was not cancelled), so search shows the document only once it is ready, a reprocess keeps
    the earlier chunks until then, and a redelivered or retried run leaves exactly one set."""
    document = Document.objects.filter(id=document_id).first()
    if document is None:
        return {"skipped": "document deleted"}
    Document.objects.filter(id=document.id).update(status=DocumentStatus.PROCESSING, run_id=ctx.id, error="")
    worked_before = float(ctx.checkpoints.get("worked_seconds", 0.0))
    _cap_check(worked=worked_before, size=document.size)

    pages = None
    if "chunked" not in ctx.checkpoints:
        pages = _extracted_pages(document=document, ctx=ctx)
    total = _chunked(document=document, ctx=ctx, pages=pages)
    del pages

    started = time.monotonic()
    done = resumed_at = int(ctx.checkpoints.get("embedded", 0))
    _stage(document, DocumentStage.EMBEDDING)
    ctx.progress(done, total, step=DocumentStage.EMBEDDING, message=f"{done}/{total} chunks")
    if resumed_at:
        ctx.log(f"Resumed at chunk {resumed_at} of {total}: the chunks embedded before are kept.")
    pending = PendingChunk.objects.filter(run_id=ctx.id)
    while done < total:
        batch = list(pending.filter(chunk_index__gte=done, chunk_index__lt=done + INGEST_COMMIT_CHUNKS)
                     .order_by("chunk_index").only("id", "text"))
        step = embed_batch_size()
        # Shortest first, so that each model call pads its texts to a length near their own (what
        # the model's encode does within one call): 6 % faster than in document order (bench/ingest_api.py).
        by_length = sorted(batch, key=lambda row: len(row.text))
        for offset in range(0, len(by_length), step):
            part = by_length[offset:offset + step]
            for row, vector in zip(part, texts_embed([row.text for row in part])):
                row.embedding = vector
            # Also where a cancel or a takeover is seen: between batches, before anything is indexed.
            ctx.progress(done + offset + len(part), total, step=DocumentStage.EMBEDDING,
                         message=f"{done + offset + len(part)}/{total} chunks")
        done += len(batch)
        worked = worked_before + time.monotonic() - ctx.started
        _cap_check(worked=worked, size=document.size)
        ctx.checkpoint({"embedded": done, "worked_seconds": round(worked, 3)}, current=done,
                       write=lambda batch=batch: PendingChunk.objects.bulk_update(batch, ["embedding"]))
        if done < total and ctx.slice_over(settings.INGEST_SLICE_SECONDS):
            ctx.log(f"Embedded {done - resumed_at} chunks in this slice ({done}/{total}); yielding the worker "
                    f"after a slice of {settings.INGEST_SLICE_SECONDS} s (INGEST_SLICE_SECONDS).")
            ctx.yield_turn(reason=f"a slice of {settings.INGEST_SLICE_SECONDS} s used at {done}/{total} chunks")
    ctx.log(f"Embedded {total} chunks; this attempt embedded {total - resumed_at} of them "
            f"in {time.monotonic() - started:.2f} s.")

    _stage(document, DocumentStage.INDEXING)
    ctx.progress(total, total, step=DocumentStage.INDEXING)
    store = vector_store()
    if store.needs_vectors:
        # An outside vector store (Pinecone) gets the vectors first; its ids come from document and
        # chunk, so a retry, a redelivery or a cancelled attempt leaves nothing that a later success
        # does not overwrite. Its outages are TransientError: retried like any other hiccup.
        rows = list(pending.order_by("chunk_index").values_list("chunk_index", "page", "embedding"))
        store.document_replace(document_id=str(document.id), owner_id=document.owner_id,
                               chunks=[(index, page) for index, page, _ in rows],
                               vectors=[vector for _, _, vector in rows], previous_count=document.chunk_count or 0)
    page_count = ctx.checkpoints.get("pages") if document.format == "pdf" else None

    def index() -> dict:
        lexeme_stats_apply(document_id=document.id, owner_id=document.owner_id, sign=-1)
        Chunk.objects.filter(document_id=document.id).delete()
        with connection.cursor() as cursor:
            cursor.execute(_PENDING_TO_CHUNKS_SQL, {"run": ctx.id, "document": str(document.id)})
        pending.delete()
        lexeme_stats_apply(document_id=document.id, owner_id=document.owner_id, sign=+1)
        Document.objects.filter(id=document.id).update(
            status=DocumentStatus.READY, stage="", chunk_count=total, pages=page_count, ready_at=timezone.now())
        return {"chunks": total, "pages": page_count}

    indexing = time.monotonic()
    result = ctx.commit(index)
    logger.info("document ingested", extra={"document_id": str(document.id), "chunks": total,
                                            "index_seconds": round(time.monotonic() - indexing, 3),
                                            "worked_seconds": round(worked_before + time.monotonic() - ctx.started, 3)})
    return result


# Embeddings committed per checkpoint: a kill loses at most this many chunks of work (about 4 s on
# one CPU thread), while one write per 64 chunks costs under 1 % of the time spent embedding them.
INGEST_COMMIT_CHUNKS = 64
# Bumped when extraction changes what it makes of a file: kept texts of older versions are redone.
EXTRACTOR_VERSION = 1

_PENDING_TO_CHUNKS_SQL = """
INSERT INTO documents_chunk (document_id, chunk_index, page, char_start, char_end, text, embedding)
SELECT %(document)s::uuid, chunk_index, page, char_start, char_end, text, embedding
  FROM documents_pendingchunk WHERE run_id = %(run)s ORDER BY chunk_index"""


def _cap_check(*, worked: float, size: int) -> None:
    cap = ingest_cap_seconds(size=size)
    if worked >= cap:
        raise PermanentError(f"The ingestion stopped: it worked {worked:.0f} s in all, over the cap of {cap} s for a "
                             f"document of {size} bytes (INGEST_SECONDS_PER_MB, at least INGEST_MIN_CAP_SECONDS).")


def _extracted_pages(*, document: Document, ctx: RunContext) -> list[Page]:
    """The document's text: kept from an earlier extraction of this version, or extracted now and kept."""
    kept = DocumentText.objects.filter(document_id=document.id, extractor_version=EXTRACTOR_VERSION).first()
    if kept is not None:
        ctx.log("Text kept from an earlier extraction; not extracted again.")
        return [Page(number, text) for number, text in kept.pages]
    started = time.monotonic()
    _stage(document, DocumentStage.EXTRACTING)
    ctx.progress(0, None, step=DocumentStage.EXTRACTING)
    with storage_errors_sorted(), document.file.open("rb") as handle:
        data = handle.read()
    pages = text_extract_bounded(data=data, fmt=document.format)
    del data
    seconds = time.monotonic() - started
    ctx.checkpoint({"extracted": True}, write=lambda: DocumentText.objects.update_or_create(
        document_id=document.id, defaults={"extractor_version": EXTRACTOR_VERSION,
                                           "pages": [[p.number, p.text] for p in pages]}))
    ctx.log(f"Extracted {sum(len(p.text) for p in pages)} characters from {len(pages)} page(s) "
            f"of {document.format} in {seconds:.2f} s.")
    return pages


def _chunked(*, document: Document, ctx: RunContext, pages: list[Page] | None) -> int:
    """How many chunks the document has; on the first attempt, they are made and written pending."""
    if "chunked" in ctx.checkpoints:
        return int(ctx.checkpoints["chunked"])
    started = time.monotonic()
    _stage(document, DocumentStage.CHUNKING)
    ctx.progress(0, None, step=DocumentStage.CHUNKING)
    chunks = text_chunk(pages=pages)
    rows = [PendingChunk(run_id=ctx.id, document_id=document.id, chunk_index=c.index, page=c.page,
                         char_start=c.char_start, char_end=c.char_end, text=c.text) for c in chunks]

    def write() -> None:
        PendingChunk.objects.filter(run_id=ctx.id).delete()
        PendingChunk.objects.bulk_create(rows, batch_size=INDEX_BATCH_SIZE)

    ctx.checkpoint({"chunked": len(rows), "pages": len(pages)}, write=write)
    ctx.log(f"Split into {len(rows)} chunks in {time.monotonic() - started:.2f} s.")
    return len(rows)


def document_mark_failed(*, run, document_id: str, **_) -> None:
    PendingChunk.objects.filter(run_id=run.id).delete()
    Document.objects.filter(id=document_id, run_id=run.id).update(status=DocumentStatus.FAILED, error=run.error)


def document_mark_cancelled(*, run, document_id: str, **_) -> None:
    """A cancelled reprocess keeps the earlier, complete chunks searchable; a first ingestion ends cancelled."""
    PendingChunk.objects.filter(run_id=run.id).delete()
    document = Document.objects.filter(id=document_id).first()
    if document is None or document.status == DocumentStatus.READY:
        return
    if document.chunks.exists():
        Document.objects.filter(id=document_id).update(status=DocumentStatus.READY, stage="", error="")
    else:
        Document.objects.filter(id=document_id).update(status=DocumentStatus.CANCELLED, stage="")


def _older_than(key: str, age: timedelta) -> bool:
    try:
        return default_storage.get_modified_time(key) < timezone.now() - age
    except (NotImplementedError, OSError):
        return False


def documents_maintain() -> dict[str, int]:
    """Remove stored files that no document refers to; re-dispatch documents stuck before processing."""
    known = set(Document.objects.values_list("file", flat=True))
    orphans = 0
    try:
        owners, _ = default_storage.listdir("documents")
    except FileNotFoundError:
        owners = []
    for owner in owners:
        folders, _ = default_storage.listdir(f"documents/{owner}")
        for folder in folders:
            key = f"documents/{owner}/{folder}/original"
            if key not in known and default_storage.exists(key) and _older_than(key, ORPHAN_MIN_AGE):
                default_storage.delete(key)
                orphans += 1
    stuck = Document.objects.filter(status__in=(DocumentStatus.UPLOADED, DocumentStatus.QUEUED),
                                    created_at__lt=timezone.now() - STUCK_AFTER)
    redispatched = 0
    for document in stuck.select_related("run"):
        if document.run is None or document.run.status in FINISHED_STATUSES:
            with transaction.atomic():
                _ingest_enqueue(document=document, triggered_by=TriggeredBy.SYSTEM)
            redispatched += 1
    return {"orphan_files_removed": orphans, "documents_redispatched": redispatched}
