from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors, services
from chat.models import ProfileSummary
from chat.serializers import (
    MessageFilterSerializer,
    MessageInputSerializer,
    MessageOutputSerializer,
    PostedMessageSerializer,
    ProfileOutputSerializer,
    SessionInputSerializer,
    SessionOutputSerializer,
)
from core.api import OwnedViewSet, described, paginated, validated_input
from core.permissions import audit_others
from jobs.public import AcceptedRunSerializer, accepted_run


@described(
    list="List your chat sessions.", retrieve="Show one chat session with its summary.",
    destroy="Delete a chat session and its messages.",
)
class SessionViewSet(OwnedViewSet):
    serializer_class = SessionOutputSerializer
    lookup_value_regex = "[0-9]+"

    visible_to = staticmethod(selectors.session_visible_to)
    # Another user's session: deleted with the permission to delete sessions; messages and summaries
    # are the owner's alone.
    others_may = {"destroy"}
    throttle_scopes = {"messages:POST": "chat", "summarize": "summaries"}

    @extend_schema(request=SessionInputSerializer, responses={201: SessionOutputSerializer})
    def create(self, request):
        """Start a chat session."""
        data = validated_input(SessionInputSerializer, request.data)
        session = services.session_create(owner=request.user, title=data["title"])
        return Response(SessionOutputSerializer(session).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["get"], description="List a session's messages, oldest first; `after` polls for new ones.",
                   parameters=[OpenApiParameter("after", int, description="Only messages with a larger id.")],
                   responses=MessageOutputSerializer(many=True))
    @extend_schema(methods=["post"], description="Send a message; the reply is written by a background run.",
                   request=MessageInputSerializer, responses={202: PostedMessageSerializer})
    @action(detail=True, methods=["get", "post"])
    def messages(self, request, pk=None):
        session = self.get_object()
        if request.method == "GET":
            params = validated_input(MessageFilterSerializer, request.query_params)
            messages = selectors.message_list(session=session, after=params.get("after"))
            return paginated(self, request, messages, MessageOutputSerializer)
        data = validated_input(MessageInputSerializer, request.data)
        message = services.message_post(session=session, content=data["content"])
        body = PostedMessageSerializer({"message": message, "run": message.run}).data
        return Response(body, status=status.HTTP_202_ACCEPTED)

    def perform_destroy(self, instance):
        audit_others(user=self.request.user, obj=instance, message="Deleted through the API", deleted=True)
        instance.delete()

    @extend_schema(request=None, responses={202: AcceptedRunSerializer})
    @action(detail=True, methods=["post"])
    def summarize(self, request, pk=None):
        """Summarise a session in the background; answers with the run."""
        return accepted_run(services.session_summarize_enqueue(session=self.get_object()))


class ProfileView(APIView):
    @extend_schema(responses=ProfileOutputSerializer)
    def get(self, request):
        """What the service has summarised of your work across sessions."""
        profile = ProfileSummary.objects.filter(user=request.user).first() or ProfileSummary(user=request.user)
        return Response(ProfileOutputSerializer(profile).data)


class ProfileSummarizeView(APIView):
    throttle_scopes = {"POST": "summaries"}

    @extend_schema(request=None, responses={202: AcceptedRunSerializer})
    def post(self, request):
        """Summarise your work across sessions in the background; answers with the run."""
        return accepted_run(services.profile_summarize_enqueue(user=request.user))

