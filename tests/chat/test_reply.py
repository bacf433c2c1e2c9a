"""Replies through a real worker talking real HTTP to a fake OpenAI-compatible server."""

import pytest
from django.core.cache import cache
from django.db import transaction

from chat import services
from chat.models import ChatSession, Message
from documents.services import document_upload
from integrations.llm import HEALTH_CACHE_KEY
from jobs.models import JobRun
from tests.factories import UserFactory
from tests.support import worker as worker_support
from tests.support.fake_llm import Step
from tests.support.files import upload
from tests.support.worker import wait_for_worker, wait_until

AI_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def llm_worker(fake_llm, celery_worker_process, django_db_setup, django_db_blocker):
    """The session worker steps aside for one configured with the fake LLM server. It reaches
    PostgreSQL through a proxy (`db_proxy`) an outage test can cut."""
    from django.db import connection

    from tests.support.proxy import TcpProxy

    with django_db_blocker.unblock():
        db = connection.settings_dict
        port = str(db.get("PORT") or 5432)
        db_proxy = TcpProxy(target_host=db.get("HOST") or "127.0.0.1", target_port=int(port))
        proc = worker_support.worker_instead_of(
            celery_worker_process, "llm-worker", AI_SERVER_URL=fake_llm.url, AI_API_KEY="sk-test",
            AI_TIMEOUT=str(AI_TIMEOUT), AI_CONNECT_TIMEOUT="1", AI_HEALTH_TTL="30",
            DATABASE_URL=worker_support.test_database_url().replace(f":{port}/", f":{db_proxy.port}/"))
    proc.db_proxy = db_proxy
    yield proc
    db_proxy.enable()
    proc.stop()


@pytest.fixture
def chat(llm_worker, fake_llm, transactional_db):
    if not llm_worker.alive:  # a test stood it aside for a worker of its own
        llm_worker.start()
        wait_for_worker("llm-worker", timeout=90)
    fake_llm.reset()
    cache.delete(HEALTH_CACHE_KEY)
    return fake_llm


def post(session, content):
    return services.message_post(session=session, content=content)


def replies(message):
    return list(Message.objects.filter(reply_to=message, role="assistant"))


def finished(run_id, *statuses):
    return wait_until(lambda: (r := JobRun.objects.get(id=run_id)).status in statuses and r, timeout=60,
                      message=f"reply run to reach {statuses}")


def test_normal_reply_with_citations_and_the_server_saw_the_context(chat):
    user = UserFactory()
    document, _ = document_upload(owner=user, upload=upload(
        "otters.txt", b"Sea otters hold hands while sleeping so they do not drift apart."))
    wait_until(lambda: document.__class__.objects.get(id=document.id).status == "ready", timeout=120,
               message="document ready")
    chat.default = Step(content="They hold hands [1].")
    message = post(ChatSession.objects.create(owner=user), "Why do sea otters hold hands?")
    finished(message.run_id, "SUCCESS")

    [reply] = replies(message)
    assert reply.status == "complete" and reply.content == "They hold hands [1]."
    assert reply.citations[0]["document_id"] == str(document.id)
    sent = chat.requests[0]
    assert any("Sea otters hold hands" in m["content"] for m in sent["messages"] if m["role"] == "system")
    assert sent["messages"][-1] == {"role": "user", "content": "Why do sea otters hold hands?"}
    assert chat.auth_headers[0] == "Bearer sk-test"
    # What was found is in the run's log, before the LLM's answer (it is written while the LLM thinks).
    lines = list(JobRun.objects.get(id=message.run_id).log_entries.values_list("message", flat=True))
    assert lines[0] == "Found 1 passage(s) in the user's documents." and lines[1].startswith("The LLM server answered")


def test_a_question_about_a_digests_topic_gets_the_digest_as_context(chat):
    from documents.pipeline.embed import texts_embed
    from tests.factories import DigestFactory

    owner = UserFactory()
    topic = "How does the database keep committed data safe?"
    embedding = list(map(float, texts_embed([topic])[0]))
    digest = DigestFactory(owner=owner, topic=topic, topic_embedding=embedding,
                           content="# Durability\nWrite-ahead logging replays the log after a crash [1].")
    DigestFactory(topic="Garden", topic_embedding=embedding)  # another user's digest on the same topic
    chat.default = Step(content="The log is replayed [1].")
    session = ChatSession.objects.create(owner=owner)

    about = post(session, "What happens to committed data when the server crashes?")
    finished(about.run_id, "SUCCESS")
    [reply] = replies(about)
    assert reply.citations == [{"digest_id": digest.id, "title": f"Research digest: {topic}"}]
    notes = [m["content"] for m in chat.requests[-1]["messages"] if m["role"] == "system"][-1]
    assert "Write-ahead logging replays the log after a crash" in notes and notes.count("Research digest") == 1

    off_topic = post(session, "When should I plant tomatoes?")
    finished(off_topic.run_id, "SUCCESS")
    assert replies(off_topic)[0].citations == []
    assert not any("Research digest" in m["content"] for m in chat.requests[-1]["messages"])


def test_503_503_then_200_gives_one_reply_and_no_apology_with_delays_as_configured(chat):
    chat.script = [Step(status=503), Step(status=503), Step(content="Third time lucky.")]
    message = post(ChatSession.objects.create(owner=UserFactory()), "Hello?")
    run = finished(message.run_id, "SUCCESS")

    assert [r.content for r in replies(message)] == ["Third time lucky."]
    assert run.attempts == 3
    assert [entry["delay"] for entry in run.attempt_log] == [0.3, 0.6]
    assert all("503" in entry["error"] for entry in run.attempt_log)


def test_slower_than_the_timeout_is_retried_then_one_apology(chat):
    chat.default = Step(delay=AI_TIMEOUT + 1.5)
    message = post(ChatSession.objects.create(owner=UserFactory()), "Are you there?")
    run = finished(message.run_id, "FAILURE")

    assert run.dead and run.attempts == 4
    assert all("timed out" in entry["error"] for entry in run.attempt_log)
    [reply] = replies(message)
    assert reply.status == "failed" and reply.content.startswith("Sorry")


def test_401_fails_at_once_with_one_apology_and_a_dead_run(chat):
    chat.default = Step(status=401)
    message = post(ChatSession.objects.create(owner=UserFactory()), "Secret?")
    run = finished(message.run_id, "FAILURE")

    assert run.attempts == 1 and run.dead
    assert len(chat.requests) == 1
    assert [r.status for r in replies(message)] == ["failed"]


def test_a_key_the_gateway_rejects_fails_the_reply_in_one_attempt_naming_the_setting_and_health_says_so(chat):
    """A LiteLLM-style proxy that does not know the worker's key (400 auth_error on its model list):
    no retries, one apology, the run's error naming AI_API_KEY, health reporting the rejection."""
    from django.test import override_settings
    from rest_framework.test import APIClient

    chat.proxy_key = "sk-the-proxys-own"
    message = post(ChatSession.objects.create(owner=UserFactory()), "Anyone home?")
    run = finished(message.run_id, "FAILURE")

    assert run.attempts == 1 and run.dead and chat.requests == []
    assert "rejected the API key" in run.error and "AI_API_KEY" in run.error
    assert [r.status for r in replies(message)] == ["failed"]
    client = APIClient()
    client.force_authenticate(UserFactory())
    with override_settings(AI_SERVER_URL=chat.url, AI_API_KEY="sk-wrong"):
        check = client.get("/api/health/").json()["checks"]["ai_server"]
    assert check["status"] == "error" and "rejecting the configuration" in check["detail"]
    assert "AI_API_KEY" in check["detail"] and "sk-wrong" not in check["detail"]


def test_a_retried_failed_reply_replaces_the_apology(chat):
    chat.default = Step(status=401)
    message = post(ChatSession.objects.create(owner=UserFactory()), "Try again later")
    finished(message.run_id, "FAILURE")
    chat.default = Step(content="Now it works.")
    new_run = services.reply_retry(message=Message.objects.get(id=message.id))
    finished(new_run.id, "SUCCESS")
    assert [(r.status, r.content) for r in replies(message)] == [("complete", "Now it works.")]


def test_health_endpoint_down_means_the_chat_endpoint_is_never_called(chat):
    chat.health_status = 503
    message = post(ChatSession.objects.create(owner=UserFactory()), "Anyone?")
    run = finished(message.run_id, "FAILURE")

    assert chat.requests == []
    assert chat.health_requests == 4
    assert run.attempts == 4 and "health" in run.error
    # Never asked, each attempt still says what it found.
    assert list(run.log_entries.values_list("message", flat=True)).count(
        "Found 0 passage(s) in the user's documents.") == 4
    assert [r.status for r in replies(message)] == ["failed"]


def test_a_redelivered_reply_task_adds_no_second_reply(chat):
    from jobs.services.runs import run_dispatch

    message = post(ChatSession.objects.create(owner=UserFactory()), "Once only")
    finished(message.run_id, "SUCCESS")
    JobRun.objects.filter(id=message.run_id).update(status="QUEUED")  # as if the ack was lost
    run_dispatch(run=JobRun.objects.get(id=message.run_id))
    finished(message.run_id, "SUCCESS")
    assert len(replies(message)) == 1
    assert len(chat.requests) == 1


def test_session_summary_by_the_llm(chat):
    session = ChatSession.objects.create(owner=UserFactory())
    message = post(session, "Tell me about tides")
    finished(message.run_id, "SUCCESS")
    chat.default = Step(content="A chat about tides.")
    with transaction.atomic():
        run = services.session_summarize_enqueue(session=session)
    finished(run.id, "SUCCESS")
    session.refresh_from_db()
    assert session.summary == "A chat about tides." and session.summarized_at


def test_health_reports_the_ai_server(chat):
    from django.test import override_settings
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(UserFactory())
    with override_settings(AI_SERVER_URL=chat.url):
        assert client.get("/api/health/").json()["checks"]["ai_server"]["status"] == "ok"
        chat.health_status = 503
        body = client.get("/api/health/").json()
    assert body["checks"]["ai_server"]["status"] == "error"
    assert body["status"] == "degraded"


def test_cancelling_a_reply_while_the_server_holds_the_answer_stops_it_at_once_and_keeps_no_text(chat):
    import time

    from django_celery_results.models import TaskResult

    from jobs.services.steering import run_cancel

    chat.default = Step(delay=AI_TIMEOUT - 0.5, content="Too late.")
    message = post(ChatSession.objects.create(owner=UserFactory()), "Slow one?")
    wait_until(lambda: chat.requests, timeout=30, interval=0.05, message="the completion request to arrive")
    cancelled = time.monotonic()
    run_cancel(run=JobRun.objects.get(id=message.run_id))
    run = finished(message.run_id, "REVOKED")
    assert time.monotonic() - cancelled < 1.0  # the connection was closed, not waited out

    time.sleep(AI_TIMEOUT)  # past the moment the answer would have arrived
    [reply] = replies(message)
    assert (reply.status, reply.content) == ("stopped", "")
    assert JobRun.objects.get(id=run.id).status == "REVOKED"
    assert TaskResult.objects.get(task_id=str(run.id)).status == "REVOKED"


def test_replies_work_against_a_server_with_no_health_endpoint(chat, llm_worker):
    """OpenAI, Ollama and many gateways serve no /health: a 404 there is no reason to refuse."""
    from tests.support import worker as worker_support

    llm_worker.stop()
    openai_like = worker_support.worker("openai-like", AI_SERVER_URL=chat.url, AI_TIMEOUT=str(AI_TIMEOUT),
                                        AI_HEALTH_PATH="/health").start()
    try:
        wait_for_worker("openai-like", timeout=90)
        chat.default = Step(content="Answered without a health endpoint.")
        message = post(ChatSession.objects.create(owner=UserFactory()), "Hello OpenAI?")
        run = finished(message.run_id, "SUCCESS")
        assert run.attempts == 1
        assert [r.content for r in replies(message)] == ["Answered without a health endpoint."]
        assert openai_like.log_records(message="AI server has no health endpoint; going ahead without it")
    finally:
        openai_like.stop()


def test_a_reply_whose_final_write_failed_after_the_llm_answered_is_finished_with_one_llm_call(chat, llm_worker,
                                                                                                 beats):
    """The answer is a step, kept the moment it arrives. Here the final write is held (another
    connection inserts, uncommitted, a reply to the same message, so the worker's insert waits on
    the one-reply constraint), the worker is killed meanwhile, and the run is taken over: the next
    attempt writes the kept answer."""
    import psycopg

    from tests.support.worker import test_database_url

    chat.default = Step(content="Paid for once.", delay=1.0)
    session = ChatSession.objects.create(owner=UserFactory())
    message = post(session, "Is this answer paid for twice?")
    with psycopg.connect(test_database_url()) as holder:
        holder.execute("INSERT INTO chat_message (session_id, role, content, status, citations, reply_to_id, "
                       "created_at) VALUES (%s, 'assistant', 'in the way', 'complete', '[]', %s, now())",
                       [session.id, message.id])
        wait_until(lambda: "answer" in JobRun.objects.get(id=message.run_id).checkpoints, timeout=30,
                   message="the answer to be kept")
        wait_until(lambda: _waits_for_a_lock(holder), timeout=10, message="the final write to wait")
        llm_worker.kill()
        holder.rollback()
    assert replies(message) == [] and len(chat.requests) == 1

    llm_worker.start()
    wait_for_worker("llm-worker", timeout=90)
    beats("reply-beat")
    run = finished(message.run_id, "SUCCESS")
    assert [r.content for r in replies(message)] == ["Paid for once."]
    assert len(chat.requests) == 1  # the second attempt did not ask again
    assert run.attempts == 2 and [e["event"] for e in run.attempt_log] == ["worker lost"]
    assert llm_worker.log_records(message="step already done; its result reused", run_id=str(run.id))


def _waits_for_a_lock(connection) -> bool:
    row = connection.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
    return row[0] > 0


def test_a_reply_whose_answer_came_during_a_database_outage_is_saved_with_one_llm_call(chat, llm_worker):
    """PostgreSQL goes away while the LLM thinks: the answer waits in the worker until the database
    is back, is kept then, and the run handed back and redelivered writes it without asking again."""
    import time

    chat.default = Step(content="Kept through the outage.", delay=1.0)
    message = post(ChatSession.objects.create(owner=UserFactory()), "Will this survive an outage?")
    wait_until(lambda: chat.requests, timeout=30, interval=0.05, message="the LLM to be asked")
    llm_worker.db_proxy.disable()
    try:
        time.sleep(2)  # the answer arrives meanwhile, with nowhere to be written
    finally:
        llm_worker.db_proxy.enable()
    run = finished(message.run_id, "SUCCESS")
    assert [r.content for r in replies(message)] == ["Kept through the outage."]
    assert len(chat.requests) == 1
    assert run.attempts == 1  # handed back during an outage, not a failed attempt
    assert llm_worker.log_records(message="step already done; its result reused", run_id=str(run.id))
