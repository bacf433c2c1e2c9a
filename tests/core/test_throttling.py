"""Throttles: over the rate, a 429 with Retry-After in the one error shape, and nothing accepted."""

import pytest
from django.core.cache import cache

from chat.models import ChatSession, Message
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def rates(settings):
    def set_rates(**rates):
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                                   "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                                              **rates}}
    cache.clear()
    yield set_rates
    cache.clear()


def test_chat_messages_have_their_own_tighter_rate(api, user, rates):
    rates(chat="2/minute")
    session = ChatSession.objects.create(owner=user)
    url = f"/api/chat/sessions/{session.id}/messages/"
    assert [api.post(url, {"content": f"q{n}"}, format="json").status_code for n in range(2)] == [202, 202]
    refused = api.post(url, {"content": "one too many"}, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert Message.objects.filter(session=session).count() == 2
    assert api.get(url).status_code == 200  # reading is not the expensive part


def test_anonymous_callers_are_limited(client, rates):
    rates(anon="3/minute")
    codes = [client.get("/api/health/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_each_user_has_their_own_budget(api, rates):
    rates(user="2/minute")
    other = UserFactory()
    from rest_framework.test import APIClient

    other_client = APIClient()
    other_client.force_authenticate(other)
    assert [api.get("/api/runs/").status_code for _ in range(3)] == [200, 200, 429]
    assert other_client.get("/api/runs/").status_code == 200


@pytest.mark.parametrize("planted", [b"not json", b"7", b'{"a": 1}', b'["x", "y"]', b"\xff\xfe"])
def test_a_planted_history_that_is_not_one_counts_as_empty_and_the_limit_still_holds(api, user, rates, planted):
    import redis
    from django.conf import settings

    rates(user="3/minute")
    assert api.get("/api/runs/").status_code == 200
    server = redis.Redis.from_url(settings.REDIS_URL)
    [key] = server.keys(f"*throttle_user_{user.pk}")
    server.set(key, planted)
    # The planted value is read as no history: three more requests fit, the fourth is over the rate.
    assert [api.get("/api/runs/").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_wrong_tokens_from_one_address_are_refused_before_they_are_checked_and_the_owner_is_not(client, user,
                                                                                                 rates):
    """A guesser gets 401s, then 429 with Retry-After, and past the limit not even a right token of
    its own address is checked; the owner of the token, from another address, is not locked out."""
    from rest_framework.authtoken.models import Token

    rates(auth_failures="3/minute")
    token = Token.objects.create(user=user).key
    guesser = {"REMOTE_ADDR": "203.0.113.7"}
    codes = [client.get("/api/runs/", HTTP_AUTHORIZATION=f"Token guess{n}", **guesser).status_code for n in range(4)]
    assert codes == [401, 401, 401, 429]
    refused = client.get("/api/runs/", HTTP_AUTHORIZATION=f"Bearer {token}", **guesser)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert refused.json()["error"]["code"] == "throttled"
    owner = client.get("/api/runs/", HTTP_AUTHORIZATION=f"Token {token}", REMOTE_ADDR="198.51.100.2")
    assert owner.status_code == 200


def test_anonymous_calls_of_a_protected_endpoint_count_against_the_anonymous_rate(client, rates):
    rates(anon="3/minute")
    codes = [client.post("/api/documents/", {}, REMOTE_ADDR="203.0.113.8").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert client.get("/api/runs/", REMOTE_ADDR="198.51.100.3").status_code == 401  # another address


def test_a_request_refused_by_its_actions_rate_does_not_use_up_the_callers_own(api, user, rates):
    rates(chat="1/minute", user="3/minute")
    session = ChatSession.objects.create(owner=user)
    url = f"/api/chat/sessions/{session.id}/messages/"
    posted = [api.post(url, {"content": f"q{n}"}, format="json").status_code for n in range(2)]
    assert posted == [202, 429]
    # The refused message counted against nothing: two of the user's three remain.
    assert [api.get("/api/runs/").status_code for _ in range(3)] == [200, 200, 429]
