"""A worker whose broker went away takes work again within seconds of its return."""

import time
from urllib.parse import urlparse, urlunparse

import pytest
from django.conf import settings
from django.db import transaction

from jobs.consumer import RECONNECT_INTERVAL_MAX_SECONDS
from jobs.models import JobRun, RunStatus
from jobs.services import runs
from tests.support.proxy import TcpProxy
from tests.support.worker import wait_until, worker_instead_of

pytestmark = pytest.mark.django_db(transaction=True)

# Celery's own back-off tries again 2, 6, 12 and 20 s after the loss: back 12.5 s into the outage,
# its worker slept until 20 s, 7.5 s after the broker had returned.
OUTAGE_SECONDS = 12.5


def test_a_worker_takes_work_within_seconds_of_its_brokers_return(celery_worker, effects):
    redis = urlparse(settings.REDIS_URL)
    proxy = TcpProxy(target_host=redis.hostname, target_port=redis.port)
    auth = f"{redis.username or ''}:{redis.password}@" if redis.password else ""
    proxied = worker_instead_of(celery_worker, "broker-away", concurrency=1,
                                CELERY_BROKER_URL=urlunparse(redis._replace(netloc=f"{auth}{redis.hostname}:{proxy.port}")))
    try:
        proxy.disable()  # the worker's connections dropped, new ones refused
        time.sleep(OUTAGE_SECONDS)
        proxy.enable()
        back = time.monotonic()
        with transaction.atomic():
            run = runs.run_enqueue(kind="tests.effect", args={"key": "after-the-outage"})
        wait_until(lambda: JobRun.objects.get(id=run.id).status == RunStatus.SUCCESS, timeout=30, interval=0.1,
                   message="the run sent once the broker was back to finish")
        waited = time.monotonic() - back
    finally:
        proxy.enable()
        proxied.stop()
    assert effects("after-the-outage") == {"after-the-outage": ""}
    # One interval to notice, the run's own second or two on a busy machine.
    assert waited < RECONNECT_INTERVAL_MAX_SECONDS + 4, f"took {waited:.1f} s after the broker was back"
