from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import OwnedViewSet, described, validated_input
from core.permissions import audit_others
from core.schema import error_response
from documents import selectors, services
from documents.retrieval import SearchMode
from documents.serializers import (
    AcceptedDocumentSerializer,
    DocumentOutputSerializer,
    DocumentStatusSerializer,
    DocumentUploadSerializer,
    SearchHitSerializer,
    SearchInputSerializer,
    SearchResultsSerializer,
)
from jobs.public import AcceptedRunSerializer, accepted_run


@described(
    list="List your documents, newest first, optionally by status.",
    retrieve="Show one document with its latest ingestion run.",
    destroy="Delete a document, its stored file and its chunks.",
)
class DocumentViewSet(OwnedViewSet):
    serializer_class = DocumentOutputSerializer
    filterset_fields = ["status"]
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    visible_to = staticmethod(selectors.document_visible_to)
    # Another user's document: reprocessed with the permission to change documents, deleted with delete.
    others_may = {"reprocess", "destroy"}
    throttle_scopes = {"create": "uploads", "reprocess": "uploads"}

    def get_parsers(self):
        if getattr(self, "action", None) == "create":
            return [MultiPartParser()]
        return super().get_parsers()

    def initialize_request(self, request, *args, **kwargs):
        request = super().initialize_request(request, *args, **kwargs)
        request.parsers = self.get_parsers()  # again, now that the action is known
        return request

    @extend_schema(request={"multipart/form-data": DocumentUploadSerializer},
                   responses={202: AcceptedDocumentSerializer, 200: DocumentOutputSerializer,
                              413: error_response(413)})
    def create(self, request):
        """Upload a file (multipart) to be ingested: 202 with the new document, 200 if you already have it."""
        data = validated_input(DocumentUploadSerializer, request.data)
        document, created = services.document_upload(owner=request.user, upload=data["file"], title=data["title"])
        if not created:
            return Response(DocumentOutputSerializer(document).data, status=status.HTTP_200_OK)
        return Response(AcceptedDocumentSerializer(document).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=DocumentStatusSerializer)
    @action(detail=True, methods=["get"])
    def status(self, request, pk=None):
        """A document's processing status, stage and progress with ETA, cheap enough to poll."""
        return Response(DocumentStatusSerializer(self.get_object()).data)

    @extend_schema(request=None, responses={202: AcceptedRunSerializer})
    @action(detail=True, methods=["post"])
    def reprocess(self, request, pk=None):
        """Ingest a document again (after a failure or a model change); answers with the new run."""
        document = self.get_object()
        run = services.document_reprocess(document=document)
        audit_others(user=request.user, obj=document, message=f"Reprocessed through the API: run {run.id}")
        return accepted_run(run)

    def perform_destroy(self, instance):
        audit_others(user=self.request.user, obj=instance, message="Deleted through the API", deleted=True)
        services.document_delete(document=instance)


class SearchView(APIView):
    @extend_schema(parameters=[OpenApiParameter("q", str, required=True, description="What to look for."),
                               OpenApiParameter("k", int, description="How many passages (1-50, default 5)."),
                               OpenApiParameter("document", OpenApiTypes.UUID,
                                                description="Only this document's passages."),
                               OpenApiParameter("mode", str, enum=SearchMode.values,
                                                description="hybrid (default): both rankings fused; vector: "
                                                            "by meaning; keyword: by words.")],
                   responses={200: SearchResultsSerializer, 503: error_response(503)})
    def get(self, request):
        """Find the passages of your ready documents that answer a query, by meaning and by words."""
        params = validated_input(SearchInputSerializer, request.query_params)
        hits = selectors.chunks_search(user=request.user, query=params["q"], k=params["k"],
                                       document_id=params.get("document"), mode=params["mode"])
        return Response({"results": SearchHitSerializer(hits, many=True).data})
