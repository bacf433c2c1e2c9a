"""The LLM client over real HTTP to the fake server: auth, health memo, failure classes."""

import base64

import pytest
from django.core.cache import cache
from django.test import override_settings

from core.errors import PermanentError, TransientError
from integrations.embeddings import embeddings_fetch
from integrations.http import ServiceMisconfigured
from integrations.llm import HEALTH_CACHE_KEY, ai_server_health, chat_complete
from tests.support.fake_llm import FakeLLM, Step

# The health memo lives in the shared cache (Redis).
pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def fake():
    server = FakeLLM()
    cache.delete(HEALTH_CACHE_KEY)
    yield server
    cache.delete(HEALTH_CACHE_KEY)
    server.stop()


def test_basic_auth_when_a_user_and_password_are_set(fake):
    with override_settings(AI_SERVER_URL=fake.url, AI_USERNAME="svc", AI_PASSWORD="pw", AI_API_KEY=""):
        assert chat_complete(messages=MESSAGES) == "A fine answer."
    assert fake.auth_headers == ["Basic " + base64.b64encode(b"svc:pw").decode()]


def test_a_healthy_answer_is_remembered_for_the_ttl(fake):
    with override_settings(AI_SERVER_URL=fake.url, AI_HEALTH_TTL=30):
        ai_server_health()
        ai_server_health()
        assert fake.health_requests == 1
        fake.health_status = 503
        with pytest.raises(TransientError):
            ai_server_health(use_cache=False)
    with override_settings(AI_SERVER_URL=fake.url, AI_HEALTH_TTL=0):
        cache.delete(HEALTH_CACHE_KEY)
        with pytest.raises(TransientError, match="503"):
            ai_server_health()


@pytest.mark.parametrize(("status", "error"), [(400, PermanentError), (403, ServiceMisconfigured), (404, PermanentError),
                                               (429, TransientError), (500, TransientError), (503, TransientError)])
def test_failures_are_classified_for_the_retry_policy(fake, status, error):
    fake.default = Step(status=status, headers={"Retry-After": "12"})
    with override_settings(AI_SERVER_URL=fake.url), pytest.raises(error) as caught:
        chat_complete(messages=MESSAGES)
    if error is TransientError:
        assert caught.value.retry_after == 12.0


def test_a_refused_connection_is_transient():
    with override_settings(AI_SERVER_URL="http://127.0.0.1:9", AI_CONNECT_TIMEOUT=1), \
            pytest.raises(TransientError, match="unreachable"):
        chat_complete(messages=MESSAGES)


def test_the_default_probe_is_the_model_listing_every_compatible_server_serves(fake):
    with override_settings(AI_SERVER_URL=fake.url, AI_HEALTH_TTL=0):
        assert ai_server_health() == "healthy"
        fake.health_status = 503
        with pytest.raises(TransientError, match="503 Service Unavailable"):
            ai_server_health()


def test_a_404_health_path_means_no_health_endpoint_and_an_empty_path_turns_the_probe_off(fake):
    with override_settings(AI_SERVER_URL=fake.url, AI_HEALTH_PATH="/health", AI_HEALTH_TTL=0):
        assert ai_server_health() == "healthy (no health endpoint)"
    with override_settings(AI_SERVER_URL=fake.url, AI_HEALTH_PATH=""):
        before = fake.health_requests
        assert ai_server_health().startswith("not probed")
        assert fake.health_requests == before


def test_ai_timeout_bounds_the_whole_call_even_when_bytes_keep_trickling(fake):
    import time

    fake.default = Step(trickle=0.2, content="x" * 50)
    with override_settings(AI_SERVER_URL=fake.url, AI_TIMEOUT=1.5):
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out"):
            chat_complete(messages=MESSAGES)
        assert time.monotonic() - started < 1.5 + 0.5


def test_an_upstream_error_body_is_never_copied_into_the_error(fake):
    fake.default = Step(status=401, echo_auth=True)  # the body repeats the key, as some gateways do
    with override_settings(AI_SERVER_URL=fake.url, AI_API_KEY="sk-secret"):
        with pytest.raises(PermanentError) as raised:
            chat_complete(messages=MESSAGES)
    assert str(raised.value) == "AI server rejected the API key (401 Unauthorized): set AI_API_KEY to a key it accepts."
    fake.default = Step(status=400, echo_auth=True)
    with override_settings(AI_SERVER_URL=fake.url, AI_API_KEY="sk-secret"):
        with pytest.raises(PermanentError) as raised:
            chat_complete(messages=MESSAGES)
    assert str(raised.value) == "AI server refused the request: 400 Bad Request"


@pytest.mark.parametrize("key", ["sk-wrong-key", ""])
def test_a_key_the_proxy_rejects_is_a_misconfiguration_naming_the_setting_on_the_probe_and_the_completion(fake, key):
    """LiteLLM's proxy answers a wrong key with 400 and none with 500: neither is a passing fault."""
    fake.proxy_key = "sk-right-key"
    with override_settings(AI_SERVER_URL=fake.url, AI_API_KEY=key):
        for call in (lambda: ai_server_health(use_cache=False), lambda: chat_complete(messages=MESSAGES)):
            with pytest.raises(ServiceMisconfigured, match="rejected the API key.*set AI_API_KEY") as caught:
                call()
            assert caught.value.setting == "AI_API_KEY"
            assert "sk-" not in str(caught.value)  # the proxy echoes part of the key; we never do
    with override_settings(AI_SERVER_URL=fake.url, AI_API_KEY="sk-right-key"):
        assert ai_server_health(use_cache=False) == "healthy"


@pytest.mark.parametrize("status", [400, 401, 403, 422])
def test_the_probe_refused_for_any_reason_but_a_missing_endpoint_is_the_key_refused(fake, status):
    """The probe sends nothing but the key: LiteLLM's proxy without a key database answers an
    unknown key with 400 "No connected db."; a 429 or a 5xx stays a passing fault."""
    fake.health_status = status
    with override_settings(AI_SERVER_URL=fake.url), pytest.raises(ServiceMisconfigured, match="AI_API_KEY"):
        ai_server_health(use_cache=False)
    for passing in (429, 500):
        fake.health_status = passing
        with override_settings(AI_SERVER_URL=fake.url), pytest.raises(TransientError):
            ai_server_health(use_cache=False)


def test_a_model_the_server_does_not_serve_names_ai_model(fake):
    fake.default = Step(status=404, error_body={"error": {"message": "The model `gpt-9` does not exist.",
                                                          "type": "NotFoundError", "code": 404}})
    with override_settings(AI_SERVER_URL=fake.url, AI_MODEL="gpt-9"), \
            pytest.raises(ServiceMisconfigured, match="set AI_MODEL") as caught:
        chat_complete(messages=MESSAGES)
    assert "gpt-9" not in str(caught.value)
    fake.default = Step(status=404)  # a 404 that says nothing of the model stays a plain refusal
    with override_settings(AI_SERVER_URL=fake.url), pytest.raises(PermanentError) as caught:
        chat_complete(messages=MESSAGES)
    assert not isinstance(caught.value, ServiceMisconfigured)


def test_the_embeddings_server_rejecting_its_key_names_embedding_api_key(fake):
    fake.embedding_script = [Step(status=401)]
    with override_settings(EMBEDDING_API_URL=fake.url, EMBEDDING_API_KEY="wrong"), \
            pytest.raises(ServiceMisconfigured, match="set EMBEDDING_API_KEY"):
        embeddings_fetch(["a text"])


# --- streamed completions (ChatStream) ---------------------------------------------------------

def _streamed(fake, **settings):
    from integrations.llm import ChatStream

    pieces = []
    with override_settings(AI_SERVER_URL=fake.url, **settings):
        completion = ChatStream(messages=MESSAGES).run(on_delta=pieces.append)
    return completion, pieces


def test_a_streamed_answer_arrives_piece_by_piece_with_the_usage_the_server_reports(fake):
    fake.default = Step(content="one two three")
    completion, pieces = _streamed(fake)
    assert pieces == ["one ", "two ", "three"] and completion.content == "one two three"
    assert (completion.prompt_tokens, completion.completion_tokens, completion.stopped) == (11, 3, False)
    sent = fake.requests[0]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


def test_a_server_without_usage_reports_none_and_one_that_refuses_stream_options_is_asked_without(fake):
    fake.default = Step(content="no counts", usage=False)
    completion, _ = _streamed(fake)
    assert (completion.content, completion.prompt_tokens, completion.completion_tokens) == ("no counts", None, None)
    fake.reset()
    fake.default = Step(content="older server", refuses_stream_options=True)
    completion, pieces = _streamed(fake)
    assert completion.content == "older server" and "".join(pieces) == "older server"
    assert ["stream_options" in r for r in fake.requests] == [True, False]


def test_a_server_that_ignores_stream_answers_whole_as_one_piece(fake):
    fake.default = Step(content="all at once", stream=False)
    completion, pieces = _streamed(fake)
    assert pieces == ["all at once"] and completion.content == "all at once"


@pytest.mark.parametrize("step", [Step(content="cut off early in the answer", cut_after=2), Step(status=503)])
def test_a_stream_that_breaks_off_or_a_failing_server_is_transient(fake, step):
    fake.default = step
    with pytest.raises(TransientError):
        _streamed(fake)


def test_a_chunk_that_is_not_json_is_transient_and_not_copied(fake):
    from integrations.llm import ChatStream

    fake.default = Step(pieces=["fine "])
    stream = ChatStream(messages=MESSAGES)
    with override_settings(AI_SERVER_URL=fake.url):
        original = fake.server.RequestHandlerClass._stream

        def garbage(self, body, step):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b"data: {not json sk-secret}\n\n")

        fake.server.RequestHandlerClass._stream = garbage
        try:
            with pytest.raises(TransientError) as raised:
                stream.run(on_delta=lambda piece: None)
        finally:
            fake.server.RequestHandlerClass._stream = original
    assert "sk-secret" not in str(raised.value)


@pytest.mark.parametrize("while_", ["holding the answer", "writing it"])
def test_stop_ends_the_stream_at_once_and_the_server_sees_its_client_go(fake, while_):
    import threading
    import time

    from integrations.llm import ChatStream

    fake.default = (Step(delay=5, content="late") if while_ == "holding the answer"
                    else Step(content="word " * 50, piece_delay=0.1))
    stream = ChatStream(messages=MESSAGES)
    pieces = []
    threading.Timer(0.5, stream.stop).start()
    started = time.monotonic()
    with override_settings(AI_SERVER_URL=fake.url, AI_TIMEOUT=10):
        completion = stream.run(on_delta=pieces.append)
    assert completion.stopped and time.monotonic() - started < 1.5
    assert completion.content == "".join(pieces)
    if while_ == "writing it":
        assert 0 < len(pieces) < 50
        # The server's next write after the stop lands in a closed connection (TCP takes one write to
        # tell), and it writes nothing more.
        time.sleep(0.5)
        assert fake.hung_up == 1 and len(fake.pieces_sent) <= len(pieces) + 1
