from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import JobRunFactory

pytestmark = pytest.mark.django_db


def _samples(response) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


def test_metrics_count_runs_dead_letters_and_time_histograms(client):
    now = timezone.now()
    JobRunFactory(kind="jobs.ping", status="SUCCESS", created_at=now - timedelta(seconds=3),
                  started_at=now - timedelta(seconds=2.7), finished_at=now - timedelta(seconds=0.7))
    dead = JobRunFactory(kind="jobs.ping", status="FAILURE", dead=True)
    JobRunFactory(kind="jobs.ping", status="FAILURE", dead=True, retry_of=None)
    JobRunFactory(kind="jobs.ping", status="QUEUED", retry_of=dead)  # one dead run was retried
    samples = _samples(client.get("/metrics"))
    assert samples[("jobs_runs", (("kind", "jobs.ping"), ("status", "FAILURE")))] == 2
    assert samples[("jobs_dead_letters", ())] == 1
    # 2.0 s of work: in the 2.5 s bucket, not in the 1 s one; 0.3 s waited in the queue.
    assert samples[("jobs_run_duration_seconds_bucket", (("kind", "jobs.ping"), ("le", "1.0")))] == 0
    assert samples[("jobs_run_duration_seconds_bucket", (("kind", "jobs.ping"), ("le", "2.5")))] == 1
    assert samples[("jobs_run_duration_seconds_gsum", (("kind", "jobs.ping"),))] == pytest.approx(2.0)
    assert samples[("jobs_run_queue_wait_seconds_bucket", (("kind", "jobs.ping"), ("le", "0.5")))] == 1
    assert ("jobs_queue_depth", (("queue", "documents"),)) in samples
    assert ("jobs_workers_online", ()) in samples


def test_metrics_are_for_loopback_or_the_token(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    answer = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert answer.status_code == 200 and b"jobs_runs" in answer.content
