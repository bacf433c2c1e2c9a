import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from chat.models import ChatSession, Message
from jobs.constants import Queue
from jobs.models import JobRun

pytestmark = pytest.mark.django_db


def test_failed_reply_filter_and_retry_action(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456789")
    client.force_login(admin)
    session = ChatSession.objects.create(owner=admin, title="Broken")
    ChatSession.objects.create(owner=admin, title="Fine")
    dead = JobRun.objects.create(kind="chat.reply", queue=Queue.CHAT, status="FAILURE", dead=True, owner=admin,
                                finished_at=timezone.now())
    question = Message.objects.create(session=session, role="user", content="q", run=dead)
    dead.args = {"message_id": question.id}
    dead.save()
    Message.objects.create(session=session, role="assistant", content="Sorry", status="failed", reply_to=question)

    page = client.get("/admin/chat/chatsession/?failed_replies=yes").content.decode()
    assert "Broken" in page and "Fine" not in page
    client.post("/admin/chat/chatsession/", {"action": "retry_session_replies", "_selected_action": [session.id]})
    retry = JobRun.objects.get(retry_of=dead)
    assert retry.triggered_by == "admin"
    assert Message.objects.get(id=question.id).run_id == retry.id
