"""The LLM client over real HTTP to the fake server: auth, health memo, failure classes."""

import base64

import pytest
from django.core.cache import cache
from django.test import override_settings

from core.errors import PermanentError, TransientError
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


@pytest.mark.parametrize(("status", "error"), [(400, PermanentError), (403, PermanentError), (404, PermanentError),
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
    fake.default = Step(status=401)
    with override_settings(AI_SERVER_URL=fake.url):
        with pytest.raises(PermanentError) as raised:
            chat_complete(messages=MESSAGES)
    assert str(raised.value) == "AI server refused the request: 401 Unauthorized"
