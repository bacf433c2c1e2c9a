"""Celery's contract on tracked tasks, walked as Celery's "Calling Tasks" and "Canvas" pages walk
it: each calling option honoured durably or refused at the call, groups, calls by name (send_task,
the `celery` command), calls in this process, Celery's extended results, and revoke from every
handle. Real worker, beat, PostgreSQL and Redis; the options' rules alone in the unit layer first."""

import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from jobs.calls import CANVAS_BOOKKEEPING, REFUSED, RUN_OWNER_HEADER, celery_call_options
from jobs.models import JobRun, RunStatus
from tests.support.worker import BASE_DIR, child_env, wait_until

SERVED = {"jobs", "documents"}
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


# --- the options' rules (unit) -----------------------------------------------------------------

@pytest.mark.unit
def test_countdown_and_eta_put_a_run_off_and_expires_sets_its_deadline():
    assert celery_call_options(countdown=10, served_queues=SERVED, now=NOW).due_at == NOW + timedelta(seconds=10)
    eta = NOW + timedelta(hours=1)
    assert celery_call_options(eta=eta, served_queues=SERVED, now=NOW).due_at == eta
    assert celery_call_options(eta=eta.replace(tzinfo=None), served_queues=SERVED, now=NOW).due_at == eta  # naive: UTC
    assert celery_call_options(eta=NOW - timedelta(seconds=1), served_queues=SERVED, now=NOW).due_at is None
    assert celery_call_options(expires=0.5, served_queues=SERVED, now=NOW).expires_at == NOW + timedelta(seconds=0.5)
    with pytest.raises(TypeError, match="countdown= or eta="):
        celery_call_options(countdown=1, eta=eta, served_queues=SERVED, now=NOW)
    with pytest.raises(TypeError, match="expires must be seconds or a datetime"):
        celery_call_options(expires="soon", served_queues=SERVED, now=NOW)


@pytest.mark.unit
def test_queue_routing_key_task_id_and_headers_are_honoured_or_refused_by_name():
    assert celery_call_options(queue="documents", served_queues=SERVED).queue == "documents"
    assert celery_call_options(routing_key="documents", served_queues=SERVED).queue == "documents"
    with pytest.raises(ValueError, match="served queues are documents, jobs"):
        celery_call_options(queue="nowhere", served_queues=SERVED)
    with pytest.raises(TypeError, match="routing_key='jobs' does not lead to queue='documents'"):
        celery_call_options(queue="documents", routing_key="jobs", served_queues=SERVED)
    run_id = uuid.uuid4()
    assert celery_call_options(task_id=str(run_id), served_queues=SERVED).run_id == run_id
    with pytest.raises(ValueError, match="task_id='my-own-id-123' is not a UUID"):
        celery_call_options(task_id="my-own-id-123", served_queues=SERVED)
    assert celery_call_options(headers={RUN_OWNER_HEADER: "alice"}, served_queues=SERVED).owner_name == "alice"
    with pytest.raises(TypeError, match="headers tenant mean nothing"):
        celery_call_options(headers={"tenant": "x"}, served_queues=SERVED)


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_every_option_not_honoured_raises_naming_it(name):
    with pytest.raises(TypeError, match=f"^{name}= is not supported on a tracked task: "):
        celery_call_options(served_queues=SERVED, **{name: "given"})
    celery_call_options(served_queues=SERVED, **{name: None})  # Celery passes some of them empty


@pytest.mark.unit
def test_an_unknown_option_raises_and_celerys_own_bookkeeping_is_accepted():
    with pytest.raises(TypeError, match="^countdwn= is not an option a tracked task takes"):
        celery_call_options(countdwn=10, served_queues=SERVED)
    call = celery_call_options(ignore_result=True, served_queues=SERVED,
                               **{name: "x" for name in CANVAS_BOOKKEEPING})
    assert call.due_at is None and call.queue is None


# --- on a real worker --------------------------------------------------------------------------

def _ping():
    from jobs.tasks import ping

    return ping


def test_a_countdown_run_waits_in_the_database_survives_the_brokers_loss_and_is_never_early(broker, beats):
    beat = beats("beat-due", **broker.env)
    wait_until(lambda: "beat lock acquired" in beat.log_text(), timeout=30, message="beat to lead")
    result = _ping().apply_async(kwargs={"echo": "later"}, countdown=6)
    run = JobRun.objects.get(id=result.id)
    assert run.status == RunStatus.QUEUED and run.due_at is not None and run.dispatched_at is None
    assert result.state == "PENDING"
    due = run.due_at  # the claim clears it
    broker.messages_drop(queue="jobs")  # a flush, a restart empty: nothing of it was in the broker to lose
    assert result.get(timeout=30) == {"echo": "later", "worker": run_worker_host()}
    run.refresh_from_db()
    assert run.started_at >= due - timedelta(seconds=0.2), (run.started_at, due)
    assert run.started_at <= due + timedelta(seconds=6)  # beat looks every second; a margin for a loaded machine


def run_worker_host() -> str:
    import socket

    return socket.gethostname()


@pytest.mark.django_db(transaction=True)
def test_a_run_not_started_by_its_expiry_ends_revoked_as_expired_and_never_runs(celery_worker, beats, effects):
    from tests.support.tasks import effect

    beats("beat-expiry")
    result = effect.apply_async(kwargs={"key": "expired-run"}, countdown=3, expires=1)
    wait_until(lambda: JobRun.objects.get(id=result.id).status == RunStatus.REVOKED, timeout=20,
               message="the run to expire")
    run = JobRun.objects.get(id=result.id)
    assert run.error.startswith("expired") and run.started_at is None
    assert result.state == "REVOKED" and "expired" in str(result.result)
    time.sleep(4)
    assert effects("expired-run") == {}


@pytest.mark.django_db(transaction=True)
def test_queue_and_task_id_are_honoured_and_the_same_task_id_makes_one_run(celery_worker):
    task_id = str(uuid.uuid4())
    first = _ping().apply_async(kwargs={"echo": "once"}, task_id=task_id, queue="documents")
    again = _ping().apply_async(kwargs={"echo": "once"}, task_id=task_id, queue="documents")
    assert first.id == again.id == task_id and JobRun.objects.filter(id=task_id).count() == 1
    assert first.get(timeout=30)["echo"] == "once"
    assert JobRun.objects.get(id=task_id).queue == "documents"
    with pytest.raises(ValueError, match="served by no worker"):
        _ping().apply_async(kwargs={"echo": "x"}, queue="gpu")


@pytest.mark.django_db(transaction=True)
def test_a_group_of_tracked_runs_gives_their_results_in_order(celery_worker):
    from celery import group

    ping = _ping()
    before = JobRun.objects.count()
    result = group(ping.s(echo=str(i)) for i in range(5)).apply_async()
    assert [r["echo"] for r in result.get(timeout=30)] == ["0", "1", "2", "3", "4"]
    assert result.completed_count() == 5 and result.ready() and result.successful()
    assert [r["echo"] for r in result.join(timeout=5)] == ["0", "1", "2", "3", "4"]
    assert JobRun.objects.count() == before + 5  # each member a tracked run
    assert set(JobRun.objects.filter(canvas_id=result.id).values_list("args__echo", flat=True)) == {
        "0", "1", "2", "3", "4"}  # one canvas: the group's


@pytest.mark.django_db(transaction=True)
def test_map_starmap_and_chunks_record_a_tracked_run_per_item(celery_worker):
    """Celery's map, starmap and chunks call the task once per item in the worker that runs them;
    a tracked task takes an item that is one dict as its args, and each call is a recorded run."""
    ping = _ping()
    before = set(JobRun.objects.values_list("id", flat=True))
    assert [r["echo"] for r in ping.map([{"echo": "m1"}, {"echo": "m2"}]).delay().get(timeout=30)] == ["m1", "m2"]
    assert [r["echo"] for r in ping.starmap([({"echo": "s1"},)]).delay().get(timeout=30)] == ["s1"]
    chunked = ping.chunks([({"echo": f"c{i}"},) for i in range(4)], 2).group().apply_async().get(timeout=30)
    assert [[r["echo"] for r in chunk] for chunk in chunked] == [["c0", "c1"], ["c2", "c3"]]
    made = JobRun.objects.exclude(id__in=before)
    assert sorted(r.args["echo"] for r in made) == ["c0", "c1", "c2", "c3", "m1", "m2", "s1"]
    assert all(r.status == RunStatus.SUCCESS for r in made)
    with pytest.raises(TypeError, match="by name"):
        ping("positional", "values")


@pytest.mark.django_db(transaction=True)
def test_plain_celery_tasks_results_carry_the_extended_fields_too(celery_worker):
    from project.celery import app

    result = app.send_task("tests.plain_add", kwargs={"x": 2, "y": 3})
    assert result.get(timeout=30) == 5
    fresh = app.AsyncResult(result.id)
    assert (fresh.name, fresh.kwargs, fresh.queue) == ("tests.plain_add", {"x": 2, "y": 3}, "jobs")
    assert fresh.worker and fresh.date_done is not None
    # What a caller chose to show instead (a secret hidden) is kept as it chose.
    hidden = app.send_task("tests.plain_add", kwargs={"x": 7, "y": 1}, kwargsrepr="{'x': '***', 'y': 1}")
    assert hidden.get(timeout=30) == 8 and app.AsyncResult(hidden.id).kwargs == "{'x': '***', 'y': 1}"


@pytest.mark.django_db(transaction=True)
def test_a_chain_runs_in_order_passing_each_result_and_a_failure_stops_it_until_retried(celery_worker, effects):
    from celery import chain

    from jobs.services.steering import run_retry
    from tests.support.tasks import effect, flaky

    ping = _ping()
    result = chain(ping.si(echo="a"), ping.s()).apply_async()
    assert result.get(timeout=30)["echo"] == {"echo": "a", "worker": run_worker_host()}
    first, second = JobRun.objects.get(id=result.parent.id), JobRun.objects.get(id=result.id)
    assert second.started_at >= first.finished_at and second.args["previous"] == first.result

    stopped = chain(flaky.si(key="chain-fails", permanent=True), effect.si(key="after-the-failure")).apply_async()
    with pytest.raises(Exception, match="bad input"):
        stopped.get(timeout=30)
    time.sleep(1)
    assert not JobRun.objects.filter(id=stopped.id).exists() and effects("after-the-failure") == {}
    # Retried (as the admin's, the API's or retry_failed's retry does), the failed link carries the chain on.
    failed = JobRun.objects.get(id=stopped.parent.id)
    JobRun.objects.filter(id=failed.id).update(args={"key": "chain-fails"})  # its input mended
    run_retry(run=failed, triggered_by="shell")
    wait_until(lambda: JobRun.objects.filter(id=stopped.id, status=RunStatus.SUCCESS).exists(), timeout=30,
               message="the rest of the chain after the retry")
    assert effects("after-the-failure") == {"after-the-failure": ""}
    from jobs.tasks import test_celery

    with pytest.raises(TypeError, match="does not take"):  # a kind that takes no previous result, at the call
        chain(ping.si(echo="a"), test_celery.s()).apply_async()


@pytest.mark.django_db(transaction=True)
def test_a_chord_runs_its_body_once_with_every_header_result_and_fails_as_celerys_does(celery_worker, effects,
                                                                                       admin_client):
    from celery import chord
    from celery.exceptions import ChordError

    from tests.support.tasks import effect, flaky

    ping = _ping()
    result = chord([ping.si(echo=str(i)) for i in range(4)], ping.s()).apply_async()
    assert [r["echo"] for r in result.get(timeout=30)["echo"]] == ["0", "1", "2", "3"]
    body = JobRun.objects.get(id=result.id)
    assert body.attempts == 1 and not JobRun.objects.filter(continuation__isnull=False).exists()
    # Its members, header and body, are one canvas: listed together in the API and on each run's page.
    members = admin_client.get("/api/runs/", {"canvas_id": str(body.canvas_id)}).json()["results"]
    assert len(members) == 5 and {m["id"] for m in members} >= {str(body.id), *(r.id for r in result.parent.results)}
    page = admin_client.get(f"/admin/jobs/jobrun/{body.id}/change/").content.decode()
    assert "Celery group, chain or chord" in page and all(JobRun.objects.get(id=r.id).short_id in page
                                                         for r in result.parent.results)

    failing = chord([effect.si(key="header-ok"), flaky.si(key="header-bad", permanent=True)],
                    effect.si(key="body-never")).apply_async()
    with pytest.raises(ChordError, match="bad input"):
        type(result)(failing.id).get(timeout=30)  # read afresh, as another process would
    assert JobRun.objects.get(id=failing.id).status == RunStatus.FAILURE and effects("body-never") == {}


@pytest.mark.django_db(transaction=True)
def test_a_chords_last_two_header_runs_ending_at_once_on_two_workers_start_its_body_once(celery_worker, effects):
    """No beat runs here: the body is recorded by whichever of the two ends it sees last, never by
    the watchdog's backstop, and never by both."""
    from celery import chord

    from tests.support import worker as worker_support
    from tests.support.tasks import effect

    second = worker_support.worker("chord-second", 2).start()
    try:
        worker_support.wait_for_worker("chord-second", timeout=90)
        for attempt in range(5):
            header = [effect.si(key=f"chord-{attempt}-header-{i}", seconds=0.3) for i in range(4)]
            result = chord(header, effect.si(key=f"chord-{attempt}-body")).apply_async()
            assert result.get(timeout=30) == {"key": f"chord-{attempt}-body"}
            members = JobRun.objects.filter(kind="tests.effect", args__key__startswith=f"chord-{attempt}-header")
            ends = sorted(members.values_list("finished_at", flat=True))
            body = JobRun.objects.get(id=result.id)
            assert body.attempts == 1 and effects(f"chord-{attempt}-body") == {f"chord-{attempt}-body": ""}
            # No beat, so no backstop: the body was recorded by the worker that ended the last header run.
            assert body.started_at - ends[-1] < timedelta(seconds=10), (ends, body.started_at)
    finally:
        second.stop()


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_hands_on_a_chord_whose_last_member_ended_with_nobody_to_hand_it_on(celery_worker):
    """A worker killed between a header run's commit and the hand-on just after it: the backstop does it."""
    from jobs.calls import canvas_link
    from jobs.runner import _takes_previous
    from jobs.services.canvas import HAND_ON_GRACE_SECONDS
    from jobs.services.maintenance import watchdog
    from tests.factories import JobRunFactory

    ping = _ping()
    body_id, member_id, group_id = str(uuid.uuid4()), uuid.uuid4(), str(uuid.uuid4())
    link = canvas_link(ping.si(echo="body").set(task_id=body_id), takes_previous=_takes_previous)
    JobRunFactory(id=member_id, kind="jobs.ping", status="SUCCESS", result={"echo": "x"},
                  continuation={"chord": {"group_id": group_id, "index": 0, "size": 1, "body": link}})
    JobRun.objects.filter(id=member_id).update(finished_at=JobRun.objects.get(id=member_id).finished_at
                                               - timedelta(seconds=HAND_ON_GRACE_SECONDS + 1))
    assert watchdog()["handed_on"] == 1
    assert ping.AsyncResult(body_id).get(timeout=30)["echo"] == "body"
    assert watchdog()["handed_on"] == 0


@pytest.mark.django_db(transaction=True)
def test_revoking_a_chain_or_a_chord_by_its_result_cancels_what_it_waits_on(celery_worker, effects):
    from celery import chain, chord

    from tests.support.tasks import effect

    running = chain(effect.si(key="chain-head", seconds=2.5), effect.si(key="chain-tail")).apply_async()
    wait_until(lambda: JobRun.objects.filter(id=running.parent.id, status=RunStatus.PROGRESS).exists(), timeout=30,
               message="the chain's first run to start")
    running.revoke()  # the tail's result: it has no run yet
    wait_until(lambda: JobRun.objects.get(id=running.parent.id).status == RunStatus.REVOKED, timeout=10,
               message="the chain's running link to be cancelled")
    header = [effect.si(key=f"chord-head-{i}", seconds=2.5) for i in range(2)]
    waiting = chord(header, effect.si(key="chord-tail")).apply_async()
    waiting.revoke()
    members = JobRun.objects.filter(args__key__startswith="chord-head-")
    wait_until(lambda: sorted(members.values_list("status", flat=True)) == [RunStatus.REVOKED] * 2, timeout=10,
               message="the chord's header runs to be cancelled")
    time.sleep(3)
    assert effects("chain-") == {} and effects("chord-") == {}
    assert not JobRun.objects.filter(id=running.id).exists()  # the chain stopped where it was cancelled
    body = JobRun.objects.get(id=waiting.id)  # the chord failed, as Celery's does when a header run is revoked
    assert body.status == RunStatus.FAILURE and body.error.startswith("ChordError") and body.started_at is None


def test_a_task_sent_by_name_is_a_tracked_run_owned_as_its_header_says(broker, user):
    from project.celery import app

    sent = app.send_task("jobs.ping", kwargs={"echo": "by name"}, headers={RUN_OWNER_HEADER: user.username})
    assert sent.get(timeout=30)["echo"] == "by name"
    run = JobRun.objects.get(id=sent.id)
    assert run.owner_id == user.id and run.args == {"echo": "by name"} and run.triggered_by == "system"
    # Params the kind refuses: recorded, and failed with why, never dropped.
    refused = app.send_task("jobs.ping", kwargs={"echo": "x" * 500})
    wait_until(lambda: JobRun.objects.filter(id=refused.id, status=RunStatus.FAILURE).exists(), timeout=30,
               message="the refused call to be recorded as failed")
    assert JobRun.objects.get(id=refused.id).error.startswith("refused: ")


@pytest.mark.django_db(transaction=True)
def test_the_celery_command_calls_a_tracked_task_and_prints_its_result(celery_worker):
    def celery(*args):
        done = subprocess.run([sys.executable, "-m", "celery", "-A", "project", *args], capture_output=True, text=True,
                              cwd=BASE_DIR, env=child_env(), timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    run_id = celery("call", "jobs.ping", "--kwargs", '{"echo": "from the cli"}')
    wait_until(lambda: JobRun.objects.filter(id=run_id, status=RunStatus.SUCCESS).exists(), timeout=30,
               message="the called task to finish")
    assert "from the cli" in celery("result", run_id)


@pytest.mark.django_db(transaction=True)
def test_a_direct_call_and_apply_run_the_body_here_as_recorded_runs(celery_worker):
    ping = _ping()
    before = set(JobRun.objects.values_list("id", flat=True))
    assert ping(echo="here")["echo"] == "here"
    assert ping.apply(kwargs={"echo": "applied"}).get()["echo"] == "applied"
    made = JobRun.objects.exclude(id__in=before)
    assert sorted(r.args["echo"] for r in made) == ["applied", "here"]
    assert all(r.status == RunStatus.SUCCESS and r.triggered_by == "shell" for r in made)
    with pytest.raises(TypeError, match="by name"):
        ping("positional")  # by position only as one dict (map's items)


@pytest.mark.django_db(transaction=True)
def test_results_carry_celerys_extended_fields(celery_worker):
    result = _ping().apply_async(kwargs={"echo": "extended"})
    result.get(timeout=30)
    fresh = _ping().AsyncResult(result.id)
    assert (fresh.name, fresh.args, fresh.kwargs, fresh.queue, fresh.retries) == (
        "jobs.ping", [], {"echo": "extended"}, "jobs", 0)
    assert fresh.worker and fresh.date_done is not None


def _running_effect(key: str):
    from tests.support.tasks import effect

    result = effect.apply_async(kwargs={"key": key, "seconds": 2.5})
    wait_until(lambda: JobRun.objects.get(id=result.id).status == RunStatus.PROGRESS, timeout=30,
               message="the run to start")
    return result


@pytest.mark.parametrize("handle", ["AsyncResult.revoke", "app.control.revoke", "celery control revoke"])
def test_revoke_from_any_handle_is_the_durable_cancel(broker, effects, handle):
    from project.celery import app

    result = _running_effect(f"revoked-{handle}")
    asked = time.monotonic()
    if handle == "AsyncResult.revoke":
        app.AsyncResult(result.id).revoke()
    elif handle == "app.control.revoke":
        app.control.revoke(result.id)
    else:
        subprocess.run([sys.executable, "-m", "celery", "-A", "project", "control", "revoke", result.id],
                       capture_output=True, cwd=BASE_DIR, env=child_env(**broker.env), timeout=60, check=True)
        asked = time.monotonic()
    wait_until(lambda: JobRun.objects.get(id=result.id).cancel_requested, timeout=5, interval=0.05,
               message="the cancel to be recorded")
    assert time.monotonic() - asked < 3  # within a second on a quiet machine; a margin for a loaded one
    wait_until(lambda: JobRun.objects.get(id=result.id).status == RunStatus.REVOKED, timeout=10,
               message="the run to end revoked")
    time.sleep(3)
    assert effects(f"revoked-{handle}") == {}  # stopped at its next report, nothing written
    app.AsyncResult(result.id).revoke()  # an ended run: nothing happens, as in Celery
    assert JobRun.objects.get(id=result.id).status == RunStatus.REVOKED
