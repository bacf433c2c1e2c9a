from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from documents import selectors, services
from documents.models import Document
from documents.serializers import (
    DocumentOutputSerializer,
    DocumentStatusSerializer,
    DocumentUploadSerializer,
    SearchHitSerializer,
    SearchInputSerializer,
)
from jobs.api import accepted_run
from project.api import OwnerScopedMixin, validated_input


class DocumentViewSet(OwnerScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin,
                      viewsets.GenericViewSet):
    serializer_class = DocumentOutputSerializer
    filterset_fields = ["status"]
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    model = Document
    visible_to = staticmethod(selectors.document_visible_to)
    throttle_scopes = {"create": "uploads", "reprocess": "uploads"}

    def get_parsers(self):
        if getattr(self, "action", None) == "create":
            return [MultiPartParser(), FormParser()]
        return super().get_parsers()

    @extend_schema(request={"multipart/form-data": DocumentUploadSerializer},
                   responses={202: DocumentOutputSerializer, 200: DocumentOutputSerializer})
    def create(self, request):
        data = validated_input(DocumentUploadSerializer, request.data)
        document, created = services.document_upload(owner=request.user, upload=data["file"], title=data["title"])
        return Response(DocumentOutputSerializer(document).data,
                        status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)

    @extend_schema(responses=DocumentStatusSerializer)
    @action(detail=True, methods=["get"])
    def status(self, request, pk=None):
        return Response(DocumentStatusSerializer(self.get_object()).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def reprocess(self, request, pk=None):
        return accepted_run(services.document_reprocess(document=self.get_object()))

    def perform_destroy(self, instance):
        services.document_delete(document=instance)


class SearchView(APIView):
    @extend_schema(parameters=[OpenApiParameter("q", str, required=True), OpenApiParameter("k", int),
                               OpenApiParameter("document", str)],
                   responses=SearchHitSerializer(many=True))
    def get(self, request):
        params = validated_input(SearchInputSerializer, request.query_params)
        hits = selectors.chunks_search(user=request.user, query=params["q"], k=params["k"],
                                       document_id=params.get("document"))
        return Response({"results": SearchHitSerializer(hits, many=True).data})
