import io

import pytest
from django.core.management import CommandError, call_command

from jobs.models import JobRun
from tests.factories import JobRunFactory

pytestmark = pytest.mark.django_db


def test_cancel_run_revokes_a_queued_run(capsys):
    run = JobRunFactory(status="QUEUED")
    call_command("cancel_run", str(run.id))
    assert "REVOKED" in capsys.readouterr().out
    assert JobRun.objects.get(id=run.id).status == "REVOKED"
    with pytest.raises(CommandError, match="already finished"):
        call_command("cancel_run", str(run.id))
    with pytest.raises(CommandError, match="no run"):
        call_command("cancel_run", "not-a-run")


def test_cancel_run_takes_the_short_id_the_admin_shows(capsys):
    run = JobRunFactory(status="QUEUED")
    call_command("cancel_run", run.short_id)
    assert JobRun.objects.get(id=run.id).status == "REVOKED"


def test_retry_failed_dry_run_changes_nothing_then_retries_each_dead_run_once(capsys):
    JobRunFactory.create_batch(2, status="FAILURE", dead=True, kind="jobs.ping")
    JobRunFactory(status="FAILURE", dead=True, kind="jobs.cleanup_runs")
    call_command("retry_failed", "--kind", "jobs.ping", "--dry-run")
    assert "would retry 2 run(s)" in capsys.readouterr().out
    assert JobRun.objects.count() == 3

    call_command("retry_failed", "--kind", "jobs.ping", "--since", "2 days")
    out = capsys.readouterr().out
    assert "[2/2]" in out and "retried 2 run(s)" in out
    assert JobRun.objects.filter(retry_of__isnull=False, triggered_by="shell").count() == 2
    call_command("retry_failed", "--kind", "jobs.ping")
    assert "retried 0 run(s)" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_celery_status_lists_workers_and_queues(celery_worker, capsys):
    call_command("celery_status")
    out = capsys.readouterr().out
    assert "test-worker@" in out and "maintenance" in out


@pytest.mark.django_db(transaction=True)
def test_celery_status_and_check_fail_without_a_worker(celery_worker):
    celery_worker.stop()
    with pytest.raises(CommandError, match="no worker"):
        call_command("celery_status", timeout=0.5)
    with pytest.raises(CommandError, match="no worker answered"):
        call_command("celery_check", timeout=2)


@pytest.mark.django_db(transaction=True)
def test_run_job_waits_and_prints_progress(celery_worker, capsys):
    from jobs.services.definitions import job_create

    job_create(name="echo", kind="jobs.ping", params={"echo": "a"})
    call_command("run_job", "echo", "--params", '{"echo": "b"}', "--wait")
    out = capsys.readouterr().out
    assert "queued (jobs.ping on jobs)" in out and "100.0% SUCCESS" in out and '"echo": "b"' in out
    assert JobRun.objects.get().triggered_by == "shell"
    with pytest.raises(CommandError, match="not JSON"):
        call_command("run_job", "echo", "--params", "{nope")


class TerminalOutput(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db(transaction=True)
def test_run_job_redraws_its_bar_in_place_on_a_terminal(celery_worker):
    from jobs.services.definitions import job_create
    from jobs.watch import CLEAR_LINE

    job_create(name="countdown", kind="tests.countdown", params={"steps": 6, "interval": 0.4})
    terminal = TerminalOutput()
    call_command("run_job", "countdown", "--wait", stdout=terminal)
    queued, _, drawn = terminal.getvalue().partition("\n")
    assert "queued (tests.countdown on jobs)" in queued
    bar, _, after = drawn.partition("\n")
    draws = bar.split(CLEAR_LINE)[1:]
    assert len(draws) >= 3 and "100.0% SUCCESS" in draws[-1]  # one line, redrawn as the run went
    assert "0 left" in draws[-1]
