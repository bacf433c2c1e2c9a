from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import JobRunFactory

pytestmark = pytest.mark.django_db


def _samples(response) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


def _families(response) -> dict:
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def test_metrics_count_ended_runs_and_time_them_in_real_histograms(client):
    now = timezone.now()
    JobRunFactory(kind="jobs.ping", status="SUCCESS", created_at=now - timedelta(seconds=3),
                  started_at=now - timedelta(seconds=2.7), finished_at=now - timedelta(seconds=0.7))
    dead = JobRunFactory(kind="jobs.ping", status="FAILURE", dead=True)
    JobRunFactory(kind="jobs.ping", status="FAILURE", dead=True, retry_of=None)
    JobRunFactory(kind="jobs.ping", status="QUEUED", retry_of=dead)  # one dead run was retried
    response = client.get("/metrics")
    families, samples = _families(response), _samples(response)
    assert families["jobs_runs_ended"].type == "counter"
    assert families["jobs_run_duration_seconds"].type == "histogram"
    assert samples[("jobs_runs_ended_total", (("kind", "jobs.ping"), ("status", "FAILURE")))] == 2
    assert samples[("jobs_runs", (("kind", "jobs.ping"), ("status", "QUEUED")))] == 1
    assert samples[("jobs_dead_letters", ())] == 1
    # 2.0 s of work: in the 2.5 s bucket, not in the 1 s one; 0.3 s waited in the queue.
    assert samples[("jobs_run_duration_seconds_bucket", (("kind", "jobs.ping"), ("le", "1.0")))] == 0
    assert samples[("jobs_run_duration_seconds_bucket", (("kind", "jobs.ping"), ("le", "2.5")))] == 1
    assert samples[("jobs_run_duration_seconds_sum", (("kind", "jobs.ping"),))] == pytest.approx(2.0)
    assert samples[("jobs_run_duration_seconds_count", (("kind", "jobs.ping"),))] == 1  # the ones that started
    assert samples[("jobs_run_queue_wait_seconds_bucket", (("kind", "jobs.ping"), ("le", "0.5")))] == 1
    assert ("jobs_queue_depth", (("queue", "documents"),)) in samples
    assert ("jobs_workers_online", ()) in samples


def test_every_kind_has_its_series_at_zero_before_its_first_run(client):
    from jobs.registry import kinds_all

    samples = _samples(client.get("/metrics"))
    for spec in kinds_all():
        for status in ("SUCCESS", "FAILURE", "REVOKED"):
            assert samples[("jobs_runs_ended_total", (("kind", spec.kind), ("status", status)))] == 0
        assert samples[("jobs_run_duration_seconds_count", (("kind", spec.kind),))] == 0
        assert samples[("jobs_runs", (("kind", spec.kind), ("status", "QUEUED")))] == 0


def test_the_ended_counter_only_grows_through_folds_and_cleanups(client):
    """What rate() needs: more ended runs, a higher count; runs folded into the tallies and then
    deleted by the cleanup still count, so the counter never falls."""
    from jobs.models import JobRun
    from jobs.services.maintenance import runs_cleanup
    from jobs.services.tallies import FOLD_LAG_SECONDS, run_tallies_fold

    ended_total = ("jobs_runs_ended_total", (("kind", "jobs.ping"), ("status", "SUCCESS")))
    duration_count = ("jobs_run_duration_seconds_count", (("kind", "jobs.ping"),))
    now = timezone.now()
    long_ago = now - timedelta(days=90)
    for _ in range(3):
        JobRunFactory(kind="jobs.ping", status="SUCCESS", created_at=long_ago, started_at=long_ago,
                      finished_at=long_ago + timedelta(seconds=1))
    seen = [_samples(client.get("/metrics"))[ended_total]]
    assert seen == [3]
    run_tallies_fold()
    run_tallies_fold()  # a second fold adds nothing
    seen.append(_samples(client.get("/metrics"))[ended_total])
    JobRunFactory(kind="jobs.ping", status="SUCCESS", started_at=now, finished_at=now)  # not folded yet
    seen.append(_samples(client.get("/metrics"))[ended_total])
    assert runs_cleanup()["runs"] == 3  # the folded ones, old enough
    assert JobRun.objects.filter(kind="jobs.ping").count() == 1
    after_cleanup = _samples(client.get("/metrics"))
    seen.append(after_cleanup[ended_total])
    assert seen == [3, 3, 4, 4]
    assert after_cleanup[duration_count] == 4
    # Folded later, the fresh run moves from the live part into the tallies: still counted once.
    run_tallies_fold(now=now + timedelta(seconds=FOLD_LAG_SECONDS + 1))
    assert _samples(client.get("/metrics"))[ended_total] == 4


def test_a_run_the_cleanup_would_take_waits_until_it_is_folded(client):
    from jobs.models import JobRun
    from jobs.services.maintenance import runs_cleanup

    just_ended = JobRunFactory(kind="jobs.ping", status="SUCCESS", finished_at=timezone.now())
    assert runs_cleanup(older_than_days=0) == {"runs": 0, "dead_runs": 0}
    assert _samples(client.get("/metrics"))[("jobs_runs_ended_total", (("kind", "jobs.ping"), ("status", "SUCCESS")))] == 1
    assert JobRun.objects.filter(id=just_ended.id).exists()


def test_metrics_are_for_loopback_or_the_token(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    answer = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert answer.status_code == 200 and b"jobs_runs" in answer.content
