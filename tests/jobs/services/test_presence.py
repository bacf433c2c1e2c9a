"""Which workers are up, from their heartbeats: recorded by a real worker, read without a ping."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import selectors
from jobs.constants import WORKER_PRESENCE_SECONDS
from jobs.models import WorkerPresence
from tests.factories import WorkerPresenceFactory
from tests.support.worker import ALL_QUEUES, wait_until


def _test_worker_online() -> bool:
    return any(name.startswith("test-worker@") for name in selectors.workers_online())


@pytest.mark.django_db
def test_a_worker_whose_last_heartbeat_is_too_old_is_not_online():
    fresh = WorkerPresenceFactory()
    WorkerPresenceFactory(seen_at=timezone.now() - timedelta(seconds=WORKER_PRESENCE_SECONDS + 1))
    assert [name for name in selectors.workers_online() if name.startswith("machine-")] == [fresh.name]


def test_a_worker_records_itself_with_its_queues_and_is_gone_as_soon_as_it_stops(celery_worker, api):
    wait_until(_test_worker_online, timeout=10, message="the worker's heartbeat")
    presence = WorkerPresence.objects.get(name__startswith="test-worker@")
    assert sorted(presence.queues) == sorted(ALL_QUEUES.split(","))
    assert api.get("/api/runs/stats/").json()["workers_online"] >= 1

    celery_worker.stop()  # a warm shutdown: it forgets itself, and its offline heartbeat records nothing
    assert not _test_worker_online()
