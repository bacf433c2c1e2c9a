"""The reply and summary services called directly with a fake run context: no worker, the real
database, and the fake LLM server on loopback where an LLM is configured."""

import pytest

from chat import services
from chat.models import ChatSession, Message, MessageStatus, ProfileSummary, Role
from tests.factories import UserFactory
from tests.support.fake_llm import Step
from tests.support.run_context import FakeRunContext, document_ready

pytestmark = pytest.mark.django_db


def _asked(question: str, *, owner=None) -> Message:
    session = services.session_create(owner=owner or UserFactory(), title="delta")
    return services.message_post(session=session, content=question)


def test_without_an_llm_the_reply_is_the_matching_passages_with_their_citations(settings):
    settings.AI_SERVER_URL = ""
    owner = UserFactory()
    document = document_ready(owner=owner, text=b"Ferrymen log the river depth at every marker at dawn.\n" * 5)
    message = _asked("When do the ferrymen log the depth?", owner=owner)
    ctx = FakeRunContext(id=str(message.run_id))

    result = services.message_reply(message_id=message.id, ctx=ctx)

    reply = Message.objects.get(reply_to=message, role=Role.ASSISTANT)
    assert result == {"reply_id": reply.id, "citations": len(reply.citations),
                      "usage": {"prompt_tokens": None, "completion_tokens": None}}
    # The passages went to the reply's followers as its text, whole.
    assert ctx.streamed == [("reset", {"attempt": 1}), ("delta", {"delta": reply.content})]
    assert reply.status == MessageStatus.COMPLETE and reply.citations
    assert reply.citations[0]["document_id"] == str(document.id)
    assert "depth at every marker" in reply.content
    assert ctx.outcome == "SUCCESS" and any("No LLM server is configured" in line for line in ctx.lines)


def test_with_an_llm_the_answer_is_a_step_an_attempt_after_it_does_not_pay_for_again(settings, fake_llm):
    settings.AI_SERVER_URL = fake_llm.url
    fake_llm.script = [Step(content="At dawn, at every marker [1].")]
    message = _asked("When is the depth logged?")
    first = FakeRunContext(id=str(message.run_id))
    services.message_reply(message_id=message.id, ctx=first)
    assert Message.objects.get(reply_to=message).content == "At dawn, at every marker [1]."
    asked = len(fake_llm.requests)

    # The final write lost (say, with the database): the next attempt has the step, not a new answer.
    Message.objects.filter(reply_to=message).delete()
    fake_llm.script = [Step(status=500)]
    second = FakeRunContext(id=str(message.run_id), attempt=2, checkpoints=dict(first.checkpoints))
    services.message_reply(message_id=message.id, ctx=second)
    assert Message.objects.get(reply_to=message).content == "At dawn, at every marker [1]."
    assert len(fake_llm.requests) == asked and second.steps_computed == []


def test_a_message_replied_to_already_is_not_replied_to_twice(settings):
    settings.AI_SERVER_URL = ""
    message = _asked("Anything on tides?")
    services.message_reply(message_id=message.id, ctx=FakeRunContext(id=str(message.run_id)))
    again = services.message_reply(message_id=message.id, ctx=FakeRunContext(id=str(message.run_id)))
    assert again["already_replied"] is True
    assert Message.objects.filter(reply_to=message).count() == 1


def test_summaries_without_an_llm_take_the_first_sentence_of_each_question(settings):
    settings.AI_SERVER_URL = ""
    owner = UserFactory()
    message = _asked("Where are the sandbars this season? They moved.", owner=owner)
    services.message_reply(message_id=message.id, ctx=FakeRunContext(id=str(message.run_id)))

    services.session_summarize(session_id=message.session_id, ctx=FakeRunContext())
    assert ChatSession.objects.get(id=message.session_id).summary == "Where are the sandbars this season?"
    result = services.profile_summarize(user_id=owner.id, ctx=FakeRunContext())
    assert ProfileSummary.objects.get(user=owner).summary == "Where are the sandbars this season?"
    assert result["sessions"] == 1
