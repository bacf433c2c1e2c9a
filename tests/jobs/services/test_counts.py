"""The run stats count ended runs from the background recount plus, live, what changed since."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import RunCount
from jobs.selectors import run_stats
from jobs.services.counts import run_counts_refresh, run_counts_until
from tests.factories import JobRunFactory, RunCountFactory

pytestmark = pytest.mark.django_db


def test_stats_add_the_recount_and_what_ended_or_started_since(user, other_user):
    long_ago = timezone.now() - timedelta(hours=2)
    JobRunFactory.create_batch(3, owner=user, status="SUCCESS", finished_at=long_ago)
    JobRunFactory(owner=user, status="FAILURE", kind="chat.reply", finished_at=long_ago)
    JobRunFactory(owner=other_user, status="SUCCESS", finished_at=long_ago)
    assert run_counts_refresh() is True and run_counts_until() is not None
    assert run_counts_refresh() is False  # recounted a moment ago
    assert RunCount.objects.filter(owner=user).count() == 2  # (ping, SUCCESS) and (reply, FAILURE)

    JobRunFactory(owner=user, status="SUCCESS")  # ended after the recount: counted live
    JobRunFactory(owner=user, status="QUEUED")
    stats = run_stats(user=user)
    assert stats["by_status"]["SUCCESS"] == 4 and stats["by_status"]["FAILURE"] == 1
    assert stats["by_status"]["QUEUED"] == 1 and stats["by_kind"] == {"chat.reply": 1, "jobs.ping": 5}
    from tests.factories import operator_make

    operator_make(user)
    assert run_stats(user=user)["by_status"]["SUCCESS"] == 5  # every owner's


def test_a_count_from_the_recount_is_read_as_it_stands(user):
    """What a recount wrote is what the stats add (they never count those runs again)."""
    RunCountFactory(owner=user, kind="jobs.ping", status="SUCCESS", runs=1_000_000)
    stats = run_stats(user=user)
    assert stats["by_status"]["SUCCESS"] == 1_000_000 and stats["by_kind"]["jobs.ping"] == 1_000_000


def test_cleanup_recounts_so_deleted_runs_leave_the_stats(user):
    from jobs.services.maintenance import runs_cleanup

    year_ago = timezone.now() - timedelta(days=365)
    JobRunFactory.create_batch(2, owner=user, status="SUCCESS", finished_at=year_ago, created_at=year_ago)
    run_counts_refresh(force=True)
    assert run_stats(user=user)["by_status"]["SUCCESS"] == 2
    assert runs_cleanup(older_than_days=30, dead_older_than_days=30)["runs"] == 2
    assert run_stats(user=user)["by_status"]["SUCCESS"] == 0
