"""Loaded with `-p tests.bootstrap`, before Django is configured.

Starts the embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set, gives
the tests their own Redis database, and routes this process's broker connection through
a proxy the tests can cut (the worker connects directly, as a worker on another host would).
"""

import atexit
import os
import shutil
from urllib.parse import urlparse, urlunparse

from devserver import embedded

# The tests flush this Redis database at start: keep it apart from anything you use.
TEST_REDIS_DB = int(os.environ.get("TEST_REDIS_DB", "9"))

started = embedded.ensure_started()
if started.started_postgres or started.started_redis:
    # Leave the machine as we found it: stop what this test run started.
    atexit.register(embedded.stop, postgres=started.started_postgres, redis=started.started_redis)
_redis = urlparse(os.environ.get("REDIS_URL") or started.redis_url)
REDIS_URL = urlunparse(_redis._replace(path=f"/{TEST_REDIS_DB}"))
os.environ["REDIS_URL"] = REDIS_URL
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = started.database_url

from tests.support.proxy import TcpProxy  # noqa: E402

broker_proxy = TcpProxy(target_host=_redis.hostname, target_port=_redis.port or 6379)
_auth = f"{_redis.username or ''}:{_redis.password}@" if _redis.password else ""
PROXIED_BROKER_URL = urlunparse(_redis._replace(netloc=f"{_auth}{_redis.hostname}:{broker_proxy.port}",
                                                path=f"/{TEST_REDIS_DB}"))
os.environ["CELERY_BROKER_URL"] = PROXIED_BROKER_URL

# The tests' files live apart from `make run`'s, and start empty.
TEST_MEDIA_ROOT = embedded.LOCAL_DIR / "test-media"
shutil.rmtree(TEST_MEDIA_ROOT, ignore_errors=True)
os.environ["MEDIA_ROOT"] = str(TEST_MEDIA_ROOT)
# Static files are collected for the tests as `make run` collects them (conftest), into their own folder.
TEST_STATIC_ROOT = embedded.LOCAL_DIR / "test-static"
shutil.rmtree(TEST_STATIC_ROOT, ignore_errors=True)
os.environ["STATIC_ROOT"] = str(TEST_STATIC_ROOT)

# Short limits so fault tests finish in seconds; the checks in project.config_checks still hold.
TEST_ENV = {
    "RUN_HEARTBEAT_SECONDS": "0.5",
    "RUN_HEARTBEAT_TIMEOUT_SECONDS": "2",
    "RUN_MESSAGE_LOST_AFTER_SECONDS": "3",
    "CANCEL_GRACE_SECONDS": "3",
    "WATCHDOG_INTERVAL_SECONDS": "2",
    # Bursts of test requests are not abuse; the throttle tests set their own rates.
    "THROTTLE_ANON": "100000/minute",
    "THROTTLE_USER": "100000/minute",
    "THROTTLE_UPLOADS": "100000/minute",
    "THROTTLE_CHAT": "100000/minute",
    "THROTTLE_SUMMARIES": "100000/minute",
    "HEALTH_ANON_CACHE_SECONDS": "2",
    # Beat tests fire every second; the floor for users has its own test.
    "JOB_MIN_INTERVAL_SECONDS": "1",
    "AI_RETRY_DELAYS": "0.3,0.6,0.9",
    "EMBEDDING_THREADS": "1",
    "DOCUMENT_MAX_BYTES": str(2 * 1024 * 1024),
    "BEAT_LOCK_TTL_SECONDS": "6",
    # The suite restarts workers dozens of times; the tests of warm-up and `make run` turn it on.
    "WORKER_WARM_UP": "0",
    # Every ingestion longer than this yields and resumes from its checkpoint: the path taken often.
    "INGEST_SLICE_SECONDS": "3",
}
for key, value in TEST_ENV.items():
    os.environ.setdefault(key, value)
