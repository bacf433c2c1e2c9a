"""The cache reads JSON only: a pickle planted in Redis runs nothing."""

import pickle

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

# Through the real Redis.
pytestmark = pytest.mark.integration


class _Planted:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/planted-pickle-ran",))


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


def test_values_round_trip_and_counters_stay_atomic():
    cache.set("json-value", {"a": [1, 2], "b": "c"}, timeout=30)
    assert cache.get("json-value") == {"a": [1, 2], "b": "c"}
    cache.set("counter", 1, timeout=30)
    assert cache.incr("counter") == 2
