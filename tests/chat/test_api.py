"""Chat API with the default worker (no LLM server configured): passages replies, ownership, input checks."""

import pytest

from chat.models import ChatSession, Message
from documents.services import document_upload
from tests.support.files import upload
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_without_an_llm_server_the_reply_is_passages_with_citations(celery_worker, api, user, client):
    document, _ = document_upload(owner=user, upload=upload(
        "bees.txt", b"Honey bees communicate the direction of flowers with a waggle dance."))
    wait_until(lambda: document.__class__.objects.get(id=document.id).status == "ready", timeout=120,
               message="document ready")
    session_id = api.post("/api/chat/sessions/", {"title": "Bees"}, format="json").json()["id"]
    response = api.post(f"/api/chat/sessions/{session_id}/messages/", {"content": "How do bees share directions?"},
                        format="json")
    assert response.status_code == 202
    assert response.json()["message"]["role"] == "user" and response.json()["run"]["kind"] == "chat.reply"

    def reply():
        messages = api.get(f"/api/chat/sessions/{session_id}/messages/").json()["results"]
        return len(messages) == 2 and messages[1]

    answer = wait_until(reply, timeout=60, message="passages reply")
    assert answer["role"] == "assistant" and answer["status"] == "complete"
    assert "passages" in answer["content"] and "waggle dance" in answer["content"]
    assert answer["citations"][0]["document_id"] == str(document.id)
    first_id = api.get(f"/api/chat/sessions/{session_id}/messages/").json()["results"][0]["id"]
    after = api.get(f"/api/chat/sessions/{session_id}/messages/", {"after": first_id}).json()["results"]
    assert [m["id"] for m in after] == [answer["id"]]
    assert api.get("/api/health/").json()["checks"]["ai_server"]["status"] == "not_configured"


def test_summaries_without_an_llm_are_extractive(celery_worker, api):
    session_id = api.post("/api/chat/sessions/", {}, format="json").json()["id"]
    api.post(f"/api/chat/sessions/{session_id}/messages/", {"content": "I am planning a garden. Roses?"},
             format="json")
    response = api.post(f"/api/chat/sessions/{session_id}/summarize/")
    assert response.status_code == 202
    wait_until(lambda: api.get(f"/api/chat/sessions/{session_id}/").json()["summary"], timeout=60,
               message="session summary")
    assert "garden" in api.get(f"/api/chat/sessions/{session_id}/").json()["summary"]
    assert api.post("/api/chat/profile/summarize/").status_code == 202
    wait_until(lambda: api.get("/api/chat/profile/").json()["summary"], timeout=60, message="profile summary")


def test_another_users_session_is_404_and_its_messages_invisible(api, other_api, user):
    session = ChatSession.objects.create(owner=user)
    Message.objects.create(session=session, role="user", content="private")
    assert other_api.get(f"/api/chat/sessions/{session.id}/").status_code == 404
    assert other_api.get(f"/api/chat/sessions/{session.id}/messages/").status_code == 404
    assert other_api.post(f"/api/chat/sessions/{session.id}/messages/", {"content": "hi"},
                          format="json").status_code == 404
    assert other_api.delete(f"/api/chat/sessions/{session.id}/").status_code == 404
    assert other_api.get("/api/chat/sessions/").json()["count"] == 0
    assert Message.objects.count() == 1


def test_bad_message_input_is_400_and_saves_nothing(api, user):
    session = ChatSession.objects.create(owner=user)
    assert api.post(f"/api/chat/sessions/{session.id}/messages/", {"content": "   "}, format="json").status_code == 400
    assert api.post(f"/api/chat/sessions/{session.id}/messages/", {}, format="json").status_code == 400
    assert api.post(f"/api/chat/sessions/{session.id}/messages/", "{bad", content_type="application/json"
                    ).status_code == 400
    assert api.get("/api/chat/sessions/999999/").status_code == 404
    assert Message.objects.count() == 0
