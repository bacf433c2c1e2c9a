import pytest

from tests.support.worker import wait_for_worker

pytestmark = pytest.mark.django_db(transaction=True)


def test_ok_with_a_worker_up(celery_worker, client):
    response = client.get("/api/health/")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"
    assert any(name.startswith("test-worker@") for name in body["checks"]["workers"]["detail"])
    assert body["checks"]["ai_server"]["status"] == "not_configured"


def test_down_when_the_broker_is_unreachable(celery_worker, client, broker_proxy):
    broker_proxy.disable()
    response = client.get("/api/health/")
    assert response.status_code == 503
    assert response.json()["status"] == "down"
    assert response.json()["checks"]["broker"]["status"] == "error"


def test_degraded_when_no_worker_answers(celery_worker, client):
    celery_worker.stop()
    try:
        response = client.get("/api/health/")
        assert response.status_code == 200
        assert response.json()["status"] == "degraded"
        assert response.json()["checks"]["workers"]["status"] == "error"
    finally:
        celery_worker.start()
        wait_for_worker("test-worker")
