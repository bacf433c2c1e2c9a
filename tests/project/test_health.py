import pytest

from tests.support.worker import wait_for_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_ok_with_a_worker_up(celery_worker, api):
    response = api.get("/api/health/")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"
    assert any(name.startswith("test-worker@") for name in body["checks"]["workers"]["detail"])
    assert body["checks"]["ai_server"]["status"] == "not_configured"


def test_down_when_the_broker_is_unreachable(celery_worker, api, broker_proxy):
    broker_proxy.disable()
    response = api.get("/api/health/")
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["checks"]["broker"]["status"] == "error"
    assert "127.0.0.1" not in response.content.decode() and str(broker_proxy.port) not in response.content.decode()


def test_degraded_when_no_worker_answers(celery_worker, api):
    celery_worker.stop()
    try:
        response = api.get("/api/health/")
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert response.json()["checks"]["workers"]["status"] == "error"
    finally:
        celery_worker.start()
        wait_for_worker("test-worker")


def test_anonymous_callers_get_only_the_status_from_a_shared_recent_probe(celery_worker, client, settings):
    import time

    first = client.get("/api/health/")
    assert first.status_code == 200 and first.json() == {"status": "ok"}
    # A real probe waits on a worker ping (about a second); the next callers share the one result.
    started = time.monotonic()
    answers = [client.get("/api/health/").json() for _ in range(20)]
    assert time.monotonic() - started < 1.0
    assert answers == [{"status": "ok"}] * 20
