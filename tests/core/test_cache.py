"""The cache reads JSON only (a pickle planted in Redis runs nothing), and a Redis that is down or
frozen costs one short timeout per breaker window, then answers from this process's memory."""

import pickle

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

# Through the real Redis.
integration = pytest.mark.integration


class _Planted:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/planted-pickle-ran",))


@integration
def test_a_pickle_planted_in_the_cache_is_never_unpickled(tmp_path):
    import os

    marker = "/tmp/planted-pickle-ran"
    if os.path.exists(marker):
        os.remove(marker)
    cache.set("ai-server:healthy", True, timeout=30)
    client = redis.Redis.from_url(settings.REDIS_URL)
    [key] = [k for k in client.keys("*ai-server:healthy*")]
    client.set(key, pickle.dumps(_Planted()))
    assert cache.get("ai-server:healthy") is None
    assert not os.path.exists(marker)


@integration
def test_values_round_trip_and_counters_stay_atomic():
    cache.set("json-value", {"a": [1, 2], "b": "c"}, timeout=30)
    assert cache.get("json-value") == {"a": [1, 2], "b": "c"}
    cache.set("counter", 1, timeout=30)
    assert cache.incr("counter") == 2


@integration
def test_a_value_that_is_not_json_is_a_miss_that_answers_the_default():
    cache.set("planted", "ok", timeout=30)
    client = redis.Redis.from_url(settings.REDIS_URL)
    [key] = client.keys("*:planted")
    client.set(key, b"\xff not json")
    assert cache.get("planted", "default") == "default"
    assert cache.get_many(["planted"]) == {}
    assert cache.get_or_set("planted", "fresh", timeout=30) == "fresh"


class FrozenServer:
    """A TCP server that accepts connections and never answers: how a SIGSTOPped Redis looks."""

    def __init__(self):
        import socket

        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.accepted = []

    def connections(self) -> int:
        self.listener.setblocking(False)
        try:
            while True:
                self.accepted.append(self.listener.accept()[0])
        except BlockingIOError:
            pass
        return len(self.accepted)


@pytest.mark.unit
def test_a_frozen_redis_costs_one_timeout_per_window_and_the_cache_answers_from_memory(settings):
    from core.cache import FailSoftRedisCache

    frozen = FrozenServer()
    settings.BREAKER_SECONDS = 60
    fallback = FailSoftRedisCache(f"redis://127.0.0.1:{frozen.port}/0", {
        "OPTIONS": {"serializer": "core.cache.JsonSerializer", "socket_timeout": 0.2, "socket_connect_timeout": 0.2}})
    fallback.breaker.reset()
    try:
        fallback.set("history", [1.5, 2.5], timeout=30)  # waits the timeout once, then trips the breaker
        assert fallback.breaker.is_open
        assert frozen.connections() == 1
        for _ in range(20):
            assert fallback.get("history") == [1.5, 2.5]
        assert fallback.add("count", 1) and fallback.incr("count") == 2
        assert frozen.connections() == 1  # nothing else went to the frozen server within the window
    finally:
        fallback.breaker.reset()
