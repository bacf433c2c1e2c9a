from rest_framework import serializers

from chat.models import ChatSession, Message, ProfileSummary
from chat.services import MESSAGE_MAX_CHARS
from chat.streams import reply_stream_path
from jobs.public import RunOutputSerializer, run_events_path


class SessionOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChatSession
        fields = ["id", "title", "summary", "summarized_at", "created_at"]


class SessionInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class MessageOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = ["id", "session", "role", "content", "status", "reply_to", "citations", "prompt_tokens",
                  "completion_tokens", "created_at"]


class MessageInputSerializer(serializers.Serializer):
    content = serializers.CharField(max_length=MESSAGE_MAX_CHARS, allow_blank=False, trim_whitespace=True)


class MessageFilterSerializer(serializers.Serializer):
    after = serializers.IntegerField(required=False, min_value=0)


class PostedMessageSerializer(serializers.Serializer):
    """The saved user message and the run writing the reply; `task_id` and `status` (in Celery's
    state names) for Celery clients. `message` stays the user message, not a sentence."""

    message = MessageOutputSerializer()
    run = RunOutputSerializer()
    task_id = serializers.UUIDField(source="run.id")
    status = serializers.CharField(source="run.celery_state")
    stream_url = serializers.SerializerMethodField(
        help_text="Server-Sent Events of the reply as it is written: where it stands, its text as `delta`s, then "
                  "`done`, `error` or `stopped` (docs/api.md, Live events).")
    events_url = serializers.SerializerMethodField(help_text="Server-Sent Events of the reply's run.")

    def get_stream_url(self, posted: dict) -> str:
        return reply_stream_path(posted["message"].pk)

    def get_events_url(self, posted: dict) -> str:
        return run_events_path(posted["run"].pk)


class ProfileOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProfileSummary
        fields = ["summary", "summarized_at"]
