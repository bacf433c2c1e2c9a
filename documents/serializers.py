from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from documents.models import Document
from documents.retrieval import SearchMode
from documents.selectors import SEARCH_MAX_K
from jobs.public import RunOutputSerializer, RunProgressSerializer, run_events_path, run_progress, task_message


class DocumentOutputSerializer(serializers.ModelSerializer):
    run = RunOutputSerializer(read_only=True, allow_null=True,
                              help_text="The latest ingestion run; null once finished runs were cleaned up.")

    class Meta:
        model = Document
        fields = ["id", "title", "original_name", "format", "size", "sha256", "status", "stage", "error", "pages",
                  "chunk_count", "created_at", "extracting_at", "chunking_at", "embedding_at", "indexing_at",
                  "ready_at", "run"]


class AcceptedDocumentSerializer(DocumentOutputSerializer):
    """An upload's 202: the document, with what a Celery client reads first, `task_id` (its
    ingestion run's id) and a `message`."""

    task_id = serializers.UUIDField(source="run_id", read_only=True, allow_null=True)
    message = serializers.SerializerMethodField()
    events_url = serializers.SerializerMethodField(
        help_text="Server-Sent Events of the ingestion: status, progress and log lines (docs/api.md, Live events).")

    class Meta(DocumentOutputSerializer.Meta):
        fields = [*DocumentOutputSerializer.Meta.fields, "task_id", "message", "events_url"]

    def get_events_url(self, document) -> str | None:
        return run_events_path(document.run_id) if document.run_id else None

    def get_message(self, document) -> str:
        return task_message(document.run) if document.run is not None else "Document stored."


class DocumentProgressSerializer(RunProgressSerializer):
    eta_seconds = serializers.FloatField(allow_null=True)


class DocumentStatusSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    task_id = serializers.UUIDField(source="run_id", read_only=True, allow_null=True,
                                    help_text="The latest ingestion run's id (a run under /api/runs/).")

    class Meta:
        model = Document
        fields = ["id", "status", "stage", "progress", "error", "task_id"]

    @extend_schema_field(DocumentProgressSerializer(allow_null=True))
    def get_progress(self, document) -> dict | None:
        run = document.run
        if run is None:
            return None
        return {**run_progress(run), "eta_seconds": run.eta_seconds}


class DocumentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True,
                                 help_text="PDF, DOCX, plain text or HTML; the type is read from the content.")
    title = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class SearchInputSerializer(serializers.Serializer):
    q = serializers.CharField(max_length=2000)
    k = serializers.IntegerField(required=False, default=5, min_value=1, max_value=SEARCH_MAX_K)
    document = serializers.UUIDField(required=False)
    mode = serializers.ChoiceField(choices=SearchMode.choices, required=False, default=SearchMode.HYBRID)


class SearchHitSerializer(serializers.Serializer):
    document_id = serializers.UUIDField()
    title = serializers.CharField()
    chunk_index = serializers.IntegerField()
    page = serializers.IntegerField(allow_null=True)
    text = serializers.CharField()
    snippet = serializers.CharField(help_text="15-35 words around the matched terms, as HTML: the matches in "
                                              "<mark>, everything else escaped.")
    score = serializers.FloatField(help_text="The mode's score: fused reciprocal rank (hybrid), cosine similarity "
                                             "(vector) or ts_rank (keyword). Higher is better.")
    found_by = serializers.ListField(child=serializers.ChoiceField(choices=["vector", "keyword"]),
                                     help_text="The rankings that found this passage.")
    vector_rank = serializers.IntegerField(allow_null=True)
    vector_score = serializers.FloatField(allow_null=True, help_text="Cosine similarity of query and passage.")
    keyword_rank = serializers.IntegerField(allow_null=True)
    keyword_score = serializers.FloatField(allow_null=True, help_text="PostgreSQL ts_rank of the query's words.")


class SearchResultsSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)
