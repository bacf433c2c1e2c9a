"""Research digests: the findings read from each document, the documents a digest run chose, and
the digest composed from them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField

from documents.models import EMBEDDING_DIMENSIONS


class FindingMethod(models.TextChoices):
    LLM = "llm", "written by the LLM from the passages"
    EXTRACTIVE = "extractive", "the passages themselves"


class Finding(models.Model):
    """What one document says about a digest's topic and questions, with citations to its chunks.

    Reused by later digests asking the same (`question_key`) of the same document while it is
    unchanged (`document_version`, its `ready_at`), unless they force reprocessing."""

    document = models.ForeignKey("documents.Document", on_delete=models.CASCADE, related_name="findings")
    question_key = models.CharField(max_length=64, help_text="sha256 of the method, topic and questions asked.")
    document_version = models.DateTimeField(help_text="The document's ready_at when it was read.")
    method = models.CharField(max_length=12, choices=FindingMethod.choices)
    content = models.TextField()
    citations = models.JSONField(default=list, blank=True,
                                 help_text='[{"ref": 1, "chunk_index": 3, "page": 2, "quote": "…"}]')
    run = models.ForeignKey("jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["document", "question_key", "document_version"],
                                               name="finding_per_document_question_version")]

    def __str__(self) -> str:
        return f"finding on {self.document_id}"


class DigestSource(models.Model):
    """One document a digest run chose: the child run reading it, and the finding it contributes
    (made by that child, or reused)."""

    run = models.ForeignKey("jobs.JobRun", on_delete=models.CASCADE, related_name="digest_sources")
    document = models.ForeignKey("documents.Document", null=True, on_delete=models.SET_NULL, related_name="+")
    title = models.CharField(max_length=300, help_text="The document's title when chosen (it may be deleted since).")
    rank = models.PositiveIntegerField(help_text="1 for the document most relevant to the topic.")
    child = models.ForeignKey("jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    finding = models.ForeignKey(Finding, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["run", "rank"]
        constraints = [models.UniqueConstraint(fields=["run", "document"], name="digest_source_once_per_run")]

    def __str__(self) -> str:
        return f"{self.title} in {self.run_id}"

    @property
    def reused(self) -> bool:
        """Its finding came from an earlier run: a document to read gets a child, a reused one none."""
        return self.finding_id is not None and self.child_id is None


class Digest(models.Model):
    """A digest composed from the findings of one run's documents, with citations."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="digests")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    run = models.OneToOneField("jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               help_text="The run that composed it; one digest per run.")
    topic = models.CharField(max_length=300)
    questions = models.JSONField(default=list, blank=True)
    method = models.CharField(max_length=12, choices=FindingMethod.choices)
    content = models.TextField()
    citations = models.JSONField(default=list, blank=True, help_text='[{"ref": 1, "document_id": "…", "title": "…", '
                                                                     '"chunk_index": 3, "page": 2, "quote": "…"}]')
    documents = models.ManyToManyField("documents.Document", blank=True, related_name="+",
                                       help_text="The documents it covers.")
    unread = models.JSONField(default=list, blank=True,
                              help_text='Documents it could not read: [{"document_id": "…", "title": "…", "error": "…"}]')
    partial = models.BooleanField(default=False, help_text="Some chosen documents could not be read.")
    not_relevant = models.JSONField(
        default=list, blank=True, help_text='Documents left out as not relevant enough to the topic (their closest '
                                            'passage under the floor): [{"document_id": "…", "title": "…", '
                                            '"closeness": 0.21}]')
    topic_embedding = VectorField(
        dimensions=EMBEDDING_DIMENSIONS, null=True, blank=True,
        help_text="The topic's embedding: chat uses the digest when a question is about it.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "created_at"], name="digest_owner_created"),
                   models.Index(fields=["job", "created_at"], name="digest_job_created")]

    def __str__(self) -> str:
        return f"{self.topic} ({self.created_at:%Y-%m-%d %H:%M})"
