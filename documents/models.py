from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.utils import timezone
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIMENSIONS = 384
# The text search configuration of the keyword index and of every query against it.
SEARCH_CONFIG = "english"


class DocumentStatus(models.TextChoices):
    UPLOADED = "uploaded"
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"


class DocumentStage(models.TextChoices):
    EXTRACTING = "extracting"
    CHUNKING = "chunking"
    EMBEDDING = "embedding"
    INDEXING = "indexing"


class DocumentFormat(models.TextChoices):
    PDF = "pdf", "PDF"
    DOCX = "docx", "Word (DOCX)"
    TEXT = "text", "plain text"
    HTML = "html", "HTML"


def document_storage_key(document: "Document", filename: str = "") -> str:
    # Keys come from ids only: the client's file name never reaches the storage backend.
    return f"documents/{document.owner_id}/{document.id}/original"


class Document(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents")
    title = models.CharField(max_length=300)
    original_name = models.CharField(max_length=255, help_text="As sent by the client; for display only.")
    format = models.CharField(max_length=10, choices=DocumentFormat.choices)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.FileField(upload_to=document_storage_key, max_length=300)
    status = models.CharField(max_length=12, choices=DocumentStatus.choices, default=DocumentStatus.UPLOADED)
    stage = models.CharField(max_length=12, choices=DocumentStage.choices, blank=True, default="")
    error = models.TextField(blank=True, default="")
    pages = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    run = models.ForeignKey("jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    extracting_at = models.DateTimeField(null=True, blank=True)
    chunking_at = models.DateTimeField(null=True, blank=True)
    embedding_at = models.DateTimeField(null=True, blank=True)
    indexing_at = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "sha256"], name="document_unique_content_per_owner")]
        indexes = [models.Index(fields=["owner", "status"], name="document_owner_status")]

    def __str__(self) -> str:
        return self.title


class Chunk(models.Model):
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks")
    chunk_index = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True)
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    text = models.TextField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    # Kept by PostgreSQL with the text, in the same statement: the keyword index can never lag the chunks.
    search_vector = models.GeneratedField(expression=SearchVector("text", config=SEARCH_CONFIG),
                                          output_field=SearchVectorField(), db_persist=True)

    class Meta:
        ordering = ["document", "chunk_index"]
        constraints = [models.UniqueConstraint(fields=["document", "chunk_index"], name="chunk_unique_index")]
        indexes = [
            HnswIndex(name="chunk_embedding_hnsw", fields=["embedding"], m=16, ef_construction=64,
                      opclasses=["vector_cosine_ops"]),
            GinIndex(name="chunk_search_vector_gin", fields=["search_vector"]),
        ]


class DocumentText(models.Model):
    """A document's extracted text, kept so that extraction runs once per document and extractor
    version: a later attempt or a reprocess of the same content starts from here."""

    document = models.OneToOneField(Document, on_delete=models.CASCADE, primary_key=True, related_name="text")
    extractor_version = models.PositiveIntegerField()
    pages = models.JSONField(help_text="[[page number or null, text], ...] in document order.")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"text of {self.document_id}"


class PendingChunk(models.Model):
    """A chunk of an ingestion in progress, apart from the searchable chunks: written in committed
    batches as the run goes (embedding filled in batch by batch), so an interrupted run resumes at
    the first batch not written. Moved to Chunk in the run's final commit; search never sees these."""

    run = models.ForeignKey("jobs.JobRun", on_delete=models.CASCADE, related_name="+", db_index=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="+", db_index=False)
    chunk_index = models.PositiveIntegerField()
    page = models.PositiveIntegerField(null=True, blank=True)
    char_start = models.PositiveIntegerField()
    char_end = models.PositiveIntegerField()
    text = models.TextField()
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True)

    class Meta:
        ordering = ["run", "chunk_index"]
        constraints = [models.UniqueConstraint(fields=["run", "chunk_index"], name="pending_chunk_unique_index")]
        indexes = [models.Index(fields=["document"], name="pending_chunk_document")]


class LexemeStat(models.Model):
    """In how many of an owner's chunks each word (lexeme) occurs: the document frequency that
    keyword search weighs words by (rare words count, common ones hardly). Kept by the ingestion in
    the same transaction as the chunks, and by deletion."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    lexeme = models.TextField()
    chunks = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "lexeme"], name="lexemestat_owner_lexeme")]

    def __str__(self) -> str:
        return f"{self.lexeme}: {self.chunks}"
