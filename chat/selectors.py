from django.db.models import QuerySet

from chat.models import ChatSession, Message
from core.permissions import sees_everyones


def session_visible_to(*, user) -> QuerySet[ChatSession]:
    sessions = ChatSession.objects.select_related("owner")  # a message's run is its owner's
    return sessions if sees_everyones(user, ChatSession) else sessions.filter(owner=user)


def message_list(*, session: ChatSession, after: int | None = None) -> QuerySet[Message]:
    messages = session.messages.select_related("run").order_by("created_at", "id")
    if after is not None:
        # Ids grow with time, so "after a message" is simply a larger id.
        messages = messages.filter(id__gt=after)
    return messages
