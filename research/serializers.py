from rest_framework import serializers

from research.models import Digest


class CitationSerializer(serializers.Serializer):
    ref = serializers.IntegerField(help_text="The [n] the content cites.")
    document_id = serializers.UUIDField()
    title = serializers.CharField()
    chunk_index = serializers.IntegerField()
    page = serializers.IntegerField(allow_null=True)
    quote = serializers.CharField()


class DocumentCoveredSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()


class UnreadDocumentSerializer(serializers.Serializer):
    document_id = serializers.UUIDField(allow_null=True)
    title = serializers.CharField()
    error = serializers.CharField(help_text="Why its child run could not read it.")


class NotRelevantDocumentSerializer(serializers.Serializer):
    document_id = serializers.UUIDField()
    title = serializers.CharField()
    closeness = serializers.FloatField(allow_null=True, help_text="Cosine similarity of its passage closest to "
                                       "the topic or a question, under the relevance floor; null when it has no "
                                       "passage to compare (nothing indexed).")


class DigestOutputSerializer(serializers.ModelSerializer):
    citations = CitationSerializer(many=True, read_only=True)
    documents = DocumentCoveredSerializer(many=True, read_only=True)
    unread = UnreadDocumentSerializer(many=True, read_only=True)
    not_relevant = NotRelevantDocumentSerializer(many=True, read_only=True)

    class Meta:
        model = Digest
        fields = ["id", "job", "run", "topic", "questions", "method", "content", "citations", "documents", "unread",
                  "not_relevant", "partial", "created_at"]
