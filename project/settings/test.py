"""The test suite's settings (pytest.ini names this module; the workers and servers a test starts
inherit it): short limits so fault tests finish in seconds, throttles out of the way, files apart
from `make run`'s. Each value can still be set in the environment, as a test's worker does; the
checks of project.settings.checks still hold. tests/bootstrap.py points DATABASE_URL, REDIS_URL and
CELERY_BROKER_URL at the servers it started."""

from pathlib import Path

from project.settings.checks import settings_check
from project.settings.local import *  # noqa: F403
from project.settings.local import LOCAL_DIR, REST_FRAMEWORK, beat_schedule, env

_TEST_DEFAULTS = {
    "RUN_HEARTBEAT_SECONDS": 0.5,
    "RUN_HEARTBEAT_TIMEOUT_SECONDS": 2.0,
    "RUN_MESSAGE_LOST_AFTER_SECONDS": 3,
    "CANCEL_GRACE_SECONDS": 3,
    "WATCHDOG_INTERVAL_SECONDS": 2,
    "HEALTH_ANON_CACHE_SECONDS": 2.0,
    # Beat tests fire every second; the floor for users has its own test.
    "JOB_MIN_INTERVAL_SECONDS": 1,
    "EMBEDDING_THREADS": 1,
    "DOCUMENT_MAX_BYTES": 2 * 1024 * 1024,
    "BEAT_LOCK_TTL_SECONDS": 6,
    # The suite restarts workers dozens of times; the tests of warm-up and `make run` turn it on.
    "WORKER_WARM_UP": False,
    # Every ingestion longer than this yields and resumes from its checkpoint: the path taken often.
    "INGEST_SLICE_SECONDS": 3.0,
    # The suite's own process shares a loaded machine with its workers: a Redis answer a few hundred
    # milliseconds late is load, not an outage. The outage tests run their stack with the default.
    "REDIS_TIMEOUT_SECONDS": 1.0,
    # Likewise a PostgreSQL slow to fork a backend for the stall guard's question; the outage tests
    # run their stack with the defaults.
    "DATABASE_STALL_SECONDS": 1.0,
    "DATABASE_PROBE_SECONDS": 2.0,
    "DATABASE_CONNECT_TIMEOUT_SECONDS": 3.0,
}
for _name, _default in _TEST_DEFAULTS.items():
    globals()[_name] = env(_name, cast=type(_default), default=_default)

AI_RETRY_DELAYS = [float(delay) for delay in env.list("AI_RETRY_DELAYS", default=["0.3", "0.6", "0.9"])]
# Bursts of test requests are not abuse; the throttle tests set their own rates.
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {
    scope: env.str(f"THROTTLE_{scope.upper()}", default="100000/minute")
    for scope in REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
}
CELERY_BEAT_SCHEDULE = beat_schedule(watchdog_interval=WATCHDOG_INTERVAL_SECONDS)  # noqa: F405
# The tests' files live apart from `make run`'s (tests/bootstrap.py empties them at start).
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(LOCAL_DIR / "test-media")))
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(LOCAL_DIR / "test-static")))

settings_check(globals())
