import pytest

from tests.factories import WorkerPresenceFactory
from tests.support.worker import wait_for_worker, wait_until

WITH_A_WORKER = pytest.mark.django_db(transaction=True)


@WITH_A_WORKER
def test_ok_with_a_worker_up_and_only_staff_see_the_workers_names(broker, api, user):
    response = api.get("/api/health/")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"
    # A user's token: how many workers answered, never their hosts.
    detail = body["checks"]["workers"]["detail"]
    assert detail.endswith(" answered") and int(detail.split()[0]) >= 1
    assert broker.worker_name not in response.content.decode()
    user.is_staff = True
    user.save()
    staff = api.get("/api/health/").json()
    assert any(name.startswith(f"{broker.worker_name}@") for name in staff["checks"]["workers"]["detail"])
    assert body["checks"]["ai_server"]["status"] == "not_configured"
    # The same broker gives the queue depths staff stats and /metrics show.
    from jobs.selectors import queue_depths

    depths = queue_depths()
    assert depths and all(isinstance(depth, int) for depth in depths.values()), depths


@WITH_A_WORKER
def test_only_degraded_when_the_broker_is_unreachable_because_work_is_still_accepted(broker, api):
    broker.proxy.disable()
    response = api.get("/api/health/")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["broker"] == {**response.json()["checks"]["broker"], "status": "error",
                                                   "detail": "BrokerUnavailable"}
    assert response.json()["checks"]["workers"]["status"] == "unknown"
    assert "127.0.0.1" not in response.content.decode() and str(broker.proxy.port) not in response.content.decode()


@WITH_A_WORKER
def test_degraded_when_no_worker_answers(celery_worker, api):
    celery_worker.stop()
    try:
        response = api.get("/api/health/")
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert response.json()["checks"]["workers"]["status"] == "error"
        assert response.json()["checks"]["workers"]["ms"] < 1000  # asked twice, still within a second
    finally:
        celery_worker.start()
        wait_for_worker("test-worker")


def _test_worker_answered(check: dict) -> bool:
    return check["status"] == "ok" and any(name.startswith("test-worker@") for name in check["detail"])


@WITH_A_WORKER
def test_the_check_returns_once_the_workers_known_to_be_up_have_answered(celery_worker, api, user, monkeypatch):
    user.is_staff = True  # who sees the workers' names
    user.save()
    from jobs import health
    from jobs.selectors import workers_online

    wait_until(lambda: any(name.startswith("test-worker@") for name in workers_online()), timeout=10,
               message="the worker's heartbeat")
    # A timeout long enough that a busy machine's late reply still comes within it, and that a ping
    # waiting it out cannot be mistaken for one that returned on the expected reply.
    monkeypatch.setattr(health, "WORKER_PING_TIMEOUT_SECONDS", 5.0)
    check = api.get("/api/health/").json()["checks"]["workers"]
    assert _test_worker_answered(check), check
    assert check["ms"] < 5000, check


@WITH_A_WORKER
def test_a_worker_known_but_gone_does_not_hide_the_workers_that_answer(celery_worker, api, user):
    user.is_staff = True  # who sees the workers' names
    user.save()
    from jobs.models import WorkerPresence

    # Killed outright, it is still listed until it ages out; alone or beside the live one.
    WorkerPresence.objects.all().delete()
    WorkerPresenceFactory(name="gone@elsewhere")
    check = api.get("/api/health/").json()["checks"]["workers"]
    assert _test_worker_answered(check), check
    assert "gone@elsewhere" not in check["detail"]


@WITH_A_WORKER
def test_anonymous_callers_get_only_the_status_from_a_shared_recent_probe(celery_worker, client, settings):
    import time

    first = client.get("/api/health/")
    assert first.status_code == 200 and first.json() == {"status": "ok"}
    # A real probe waits on a worker ping (about a second); the next callers share the one result.
    started = time.monotonic()
    answers = [client.get("/api/health/").json() for _ in range(20)]
    assert time.monotonic() - started < 1.0
    assert answers == [{"status": "ok"}] * 20


# --- the registry's verdict, from checks registered here (no server asked) ------------------------

def _registry(monkeypatch, *checks):
    from core import health

    monkeypatch.setattr(health, "_checks", {})
    for check in checks:
        health.health_check_register(check)
    return health


def _fails():
    from core.health import CheckFailed

    raise CheckFailed("no answer")


def test_a_required_check_failing_is_down_and_what_needs_it_is_unknown(monkeypatch):
    from core.health import HealthCheck

    health = _registry(monkeypatch, HealthCheck("store", _fails, required=True),
                       HealthCheck("readers", lambda: ["r1"], needs="store"))
    body, status = health.health_report()
    assert status == 503 and body["status"] == "down"
    assert body["checks"]["store"] == {**body["checks"]["store"], "status": "error", "detail": "no answer"}
    assert body["checks"]["readers"] == {"status": "unknown", "detail": "store unreachable", "ms": 0.0}


def test_an_optional_check_failing_degrades_one_not_configured_does_not_and_one_not_applying_is_absent(monkeypatch):
    from core.health import HealthCheck

    health = _registry(monkeypatch, HealthCheck("store", lambda: "reachable", required=True),
                       HealthCheck("model", lambda: "healthy", unconfigured=lambda: "MODEL_URL is not set"),
                       HealthCheck("index", _fails, applies=lambda: False))
    body, status = health.health_report()
    assert (status, body["status"], set(body["checks"])) == (200, "ok", {"store", "model"})
    assert body["checks"]["model"]["status"] == "not_configured"

    health.health_check_register(HealthCheck("index", lambda: 1 / 0))
    body, status = health.health_report()
    assert (status, body["status"]) == (200, "degraded")
    assert body["checks"]["index"]["detail"] == "ZeroDivisionError"  # the type, never a message that may hold a host


def test_a_caller_shown_the_status_alone_waits_for_no_check_once_a_required_one_failed(monkeypatch):
    """With the database down, anonymous callers (and every caller, as no token can be checked)
    learn "down" without the other checks: a worker ping would have them wait its whole timeout."""
    from core.health import HealthCheck

    asked = []
    health = _registry(monkeypatch, HealthCheck("cache", lambda: asked.append("cache")),
                       HealthCheck("store", _fails, required=True),
                       HealthCheck("workers", lambda: asked.append("workers")))
    body, status = health.health_report(status_only=True)
    assert (status, body["status"], asked) == (503, "down", [])
    body, status = health.health_report()
    assert (status, body["status"], asked) == (503, "down", ["cache", "workers"])
