import re

import pytest
from django.contrib.auth import get_user_model

from jobs.models import JobRun
from tests.factories import JobFactory, JobRunFactory, JobRunLogEntryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-123456789")
    client.force_login(admin)
    return client


def test_runs_list_shows_badges_progress_and_filters(admin_client):
    JobRunFactory(status="PROGRESS", progress_current=30, progress_total=120, progress_step="embedding")
    JobRunFactory(status="FAILURE", dead=True, error="boom")
    page = admin_client.get("/admin/jobs/jobrun/").content.decode()
    assert "PROGRESS" in page and "25%" in page and "FAILURE · dead" in page
    assert admin_client.get("/admin/jobs/jobrun/?dead__exact=1").status_code == 200


def test_run_page_and_admin_index_dashboard(admin_client):
    run = JobRunFactory(status="FAILURE", dead=True, error="broken pipe", traceback="Traceback ...")
    page = admin_client.get(f"/admin/jobs/jobrun/{run.id}/change/").content.decode()
    assert "broken pipe" in page and "Traceback" in page
    index = admin_client.get("/admin/").content.decode()
    assert "Background work" in index and "broken pipe" in index


def test_retry_and_cancel_actions(admin_client):
    failed = JobRunFactory(status="FAILURE", dead=True)
    queued = JobRunFactory(status="QUEUED")
    admin_client.post("/admin/jobs/jobrun/", {"action": "retry_runs", "_selected_action": [failed.id]})
    assert JobRun.objects.filter(retry_of=failed, triggered_by="admin").count() == 1
    admin_client.post("/admin/jobs/jobrun/", {"action": "cancel_runs", "_selected_action": [queued.id]})
    assert JobRun.objects.get(id=queued.id).status == "REVOKED"


def test_job_run_now_action(admin_client):
    job = JobFactory(kind="jobs.ping")
    admin_client.post("/admin/jobs/job/", {"action": "run_now", "_selected_action": [job.id]})
    assert JobRun.objects.filter(job=job, triggered_by="admin").count() == 1


def test_task_result_admin_retries_tracked_tasks(admin_client):
    from django_celery_results.models import TaskResult

    failed = JobRunFactory(status="FAILURE", dead=True)
    result = TaskResult.objects.create(task_id=str(failed.id), status="FAILURE", task_name="jobs.ping")
    admin_client.post("/admin/django_celery_results/taskresult/",
                      {"action": "retry_task_results", "_selected_action": [result.pk]})
    assert JobRun.objects.filter(retry_of=failed).count() == 1


def test_run_page_shows_traceback_attempts_log_links_and_buttons(admin_client):
    from documents.models import Document  # noqa: F401 (the admin page it links to exists)

    run = JobRunFactory(status="FAILURE", dead=True, error="ValueError: no", traceback="Traceback (most recent)\n  x",
                        args={"document_id": "3f1e2d4c-0000-4000-8000-000000000001", "echo": "a"},
                        attempt_log=[{"attempt": 1, "event": "failed", "error": "ValueError: no", "delay": 5.0,
                                      "at": "2026-11-23T10:11:12.123456+00:00"}])
    JobRunLogEntryFactory(run=run, message="Extracted 12 pages.")
    page = admin_client.get(f"/admin/jobs/jobrun/{run.id}/change/").content.decode()
    assert '<pre class="run-pre">Traceback (most recent)' in page
    assert "<td>failed</td><td>ValueError: no</td><td>5.0 s</td><td>2026-11-23 10:11:12</td>" in page
    assert "Extracted 12 pages." in page
    assert "/admin/documents/document/3f1e2d4c-0000-4000-8000-000000000001/change/" in page
    assert 'id="run-retry"' in page and 'id="run-cancel"' not in page


def test_retry_button_marks_the_dead_letter_and_records_who(admin_client):
    from django.contrib.admin.models import LogEntry

    dead = JobRunFactory(status="FAILURE", dead=True, error="timeout talking to the LLM")
    assert admin_client.get("/admin/jobs/jobrun/?attention=dead_letter").context["cl"].result_count == 1
    response = admin_client.post(f"/admin/jobs/jobrun/{dead.id}/retry/")
    retry = JobRun.objects.get(retry_of=dead)
    assert response.status_code == 302 and response["Location"].endswith(f"/admin/jobs/jobrun/{retry.id}/change/")
    page = admin_client.get(f"/admin/jobs/jobrun/{dead.id}/change/").content.decode()
    assert f"retried → <a href=\"/admin/jobs/jobrun/{retry.id}/change/\">{retry.short_id}</a>" in page
    assert admin_client.get("/admin/jobs/jobrun/?attention=dead_letter").context["cl"].result_count == 0
    assert "timeout talking" not in admin_client.get("/admin/").content.decode()  # off the dashboard
    entry = LogEntry.objects.get(object_id=str(dead.id))
    assert entry.user.username == "root" and "Retried" in entry.get_change_message()


def test_search_by_short_id_and_error_text(admin_client):
    wanted = JobRunFactory(status="FAILURE", error="ConnectionRefusedError: embeddings server")
    JobRunFactory(status="SUCCESS")

    def found(term):
        return list(admin_client.get("/admin/jobs/jobrun/", {"q": term}).context["cl"].result_list)

    assert found(wanted.short_id) == [wanted]
    assert found(str(wanted.id)) == [wanted]
    assert found("embeddings server") == [wanted]


def test_live_endpoint_answers_each_runs_current_cell(admin_client):
    run = JobRunFactory(status="PROGRESS", progress_current=3, progress_total=4, progress_step="embedding",
                        progress_message="3/4 chunks", eta_seconds=75)
    body = admin_client.get("/admin/jobs/jobrun/live/", {"ids": f"{run.id},not-an-id"}).json()
    cell = body["runs"][str(run.id)]
    assert not cell["finished"] and "75%" in cell["html"] and "embedding · 3/4 chunks · ETA 1 min 15 s" in cell["html"]


def test_stalled_run_is_flagged_and_can_be_force_failed(admin_client):
    from datetime import timedelta

    from django.utils import timezone

    long_ago = timezone.now() - timedelta(minutes=10)
    stalled = JobRunFactory(status="STARTED", started_at=long_ago, heartbeat_at=long_ago, attempts=1)
    healthy = JobRunFactory(status="STARTED", started_at=timezone.now(), heartbeat_at=timezone.now())
    listed = admin_client.get("/admin/jobs/jobrun/?attention=stalled").context["cl"].result_list
    assert list(listed) == [stalled]
    assert 'id="run-force-fail"' in admin_client.get(f"/admin/jobs/jobrun/{stalled.id}/change/").content.decode()
    admin_client.post(f"/admin/jobs/jobrun/{healthy.id}/force-fail/")
    admin_client.post(f"/admin/jobs/jobrun/{stalled.id}/force-fail/")
    assert JobRun.objects.get(id=healthy.id).status == "STARTED"
    failed = JobRun.objects.get(id=stalled.id)
    assert failed.status == "FAILURE" and failed.dead and "force-failed by root" in failed.error


def _job_form(**fields):
    data = {"name": "Nightly", "kind": "tests.countdown", "owner": "", "enabled": "on", "schedule_type": "none",
            "crontab": "", "timezone": "UTC", "every_seconds": "", "params_json": "", "param__steps": "3",
            "param__interval": ""}
    data.update(fields)
    return data


def test_job_form_turns_every_bad_input_into_a_form_error(admin_client):
    from jobs.models import Job

    cases = {
        "crontab": _job_form(schedule_type="crontab", crontab="61 * * * *"),
        "kind": _job_form(kind="no.such.kind"),
        "param__steps": _job_form(param__steps="0"),
        "params_json": _job_form(params_json="{broken"),
        "every_seconds": _job_form(schedule_type="interval", every_seconds=""),
    }
    # A value typed into the field of a schedule not chosen would be dropped in silence: said on it.
    typed_aside = {"crontab": _job_form(schedule_type="none", crontab="61 * * *"),
                   "every_seconds": _job_form(schedule_type="crontab", crontab="0 3 * * *", every_seconds="60")}
    for field, data in typed_aside.items():
        response = admin_client.post("/admin/jobs/job/add/?kind=tests.countdown", data)
        assert "choose" in " ".join(response.context["adminform"].form.errors.get(field, [])), field
    for field, data in cases.items():
        response = admin_client.post("/admin/jobs/job/add/?kind=tests.countdown", data)
        assert response.status_code == 200, field
        assert response.context["adminform"].form.errors.get(field), (field, response.context["adminform"].form.errors)
    assert Job.objects.count() == 0


def test_job_form_shows_every_error_on_the_first_submit(admin_client):
    """A field's own error (the params JSON) and the service's checks (the crontab, the params'
    schema, the name already taken) on one submit, each on its field."""
    from jobs.models import Job

    admin_client.post("/admin/jobs/job/add/?kind=tests.countdown", _job_form(name="Taken"))
    response = admin_client.post("/admin/jobs/job/add/?kind=tests.countdown", _job_form(
        name="Taken", schedule_type="crontab", crontab="61 * * * *", param__steps="0", params_json="{broken"))
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"name", "crontab", "param__steps", "params_json"}, errors
    assert Job.objects.filter(name="Taken").count() == 1


def test_job_form_builds_params_and_schedule_and_runs_now(admin_client):
    from jobs.models import Job

    form = admin_client.get("/admin/jobs/job/add/?kind=tests.countdown").content.decode()
    assert 'name="param__steps"' in form and 'name="param__interval"' in form and "jobs.ping" in form
    response = admin_client.post("/admin/jobs/job/add/?kind=tests.countdown",
                                 _job_form(schedule_type="crontab", crontab="0 3 * * *", timezone="Europe/Paris"))
    assert response.status_code == 302
    job = Job.objects.get(name="Nightly")
    assert job.params == {"steps": 3} and job.schedule == {"crontab": "0 3 * * *", "timezone": "Europe/Paris"}
    assert job.periodic_task.crontab.timezone.key == "Europe/Paris"
    response = admin_client.post(f"/admin/jobs/job/{job.id}/change/",
                                 {**_job_form(schedule_type="interval", every_seconds="600"), "_run_now": "1"},
                                 follow=True)
    run = JobRun.objects.get(job=job)
    assert f"/admin/jobs/jobrun/{run.id}/change/" in response.content.decode()
    assert Job.objects.get(id=job.id).schedule == {"every_seconds": 600}


def test_a_jobs_beat_entry_is_read_only_in_beat_admin(admin_client):
    from django_celery_beat.models import PeriodicTask

    from jobs.services.definitions import job_create

    job = job_create(name="Hourly ping", kind="jobs.ping", schedule={"every_seconds": 3600})
    task = job.periodic_task
    page = admin_client.get(f"/admin/django_celery_beat/periodictask/{task.id}/change/").content.decode()
    assert f"/admin/jobs/job/{job.id}/change/" in page and 'name="_save"' not in page
    response = admin_client.post(f"/admin/django_celery_beat/periodictask/{task.id}/change/",
                                 {"name": task.name, "enabled": ""})
    assert response.status_code == 403
    admin_client.post("/admin/django_celery_beat/periodictask/",
                      {"action": "disable_tasks", "_selected_action": [task.id]})
    assert PeriodicTask.objects.get(id=task.id).enabled


def test_a_crontab_row_a_job_uses_is_read_only_and_no_bulk_delete_takes_it(admin_client):
    from django_celery_beat.models import CrontabSchedule

    from jobs.services.definitions import job_create

    job = job_create(name="Weekday digest", kind="jobs.ping", schedule={"crontab": "30 6 * * 1-5"})
    row = job.periodic_task.crontab
    loose = CrontabSchedule.objects.create(minute="5", hour="4")
    page = admin_client.get(f"/admin/django_celery_beat/crontabschedule/{row.id}/change/").content.decode()
    assert f"/admin/jobs/job/{job.id}/change/" in page and 'name="_save"' not in page
    edit = {"minute": "45", "hour": "6", "day_of_month": "*", "month_of_year": "*", "day_of_week": "1-5",
            "timezone": "UTC"}
    assert admin_client.post(f"/admin/django_celery_beat/crontabschedule/{row.id}/change/", edit).status_code == 403
    response = admin_client.post("/admin/django_celery_beat/crontabschedule/",
                                 {"action": "delete_selected", "_selected_action": [row.id, loose.id], "post": "yes"},
                                 follow=True)
    assert "left as they are" in response.content.decode()
    row.refresh_from_db()
    assert (row.minute, row.hour) == ("30", "6") and not CrontabSchedule.objects.filter(id=loose.id).exists()
    assert job.periodic_task.__class__.objects.get(id=job.periodic_task_id).crontab_id == row.id


def test_the_watchdog_survives_beats_bulk_actions_and_the_list_says_when_each_task_runs_next(admin_client):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=15, period=IntervalSchedule.SECONDS)
    watchdog = PeriodicTask.objects.create(name="jobs-watchdog", task="jobs.watchdog", interval=every)
    other = PeriodicTask.objects.create(name="someone's task", task="jobs.watchdog", interval=every)
    response = admin_client.post("/admin/django_celery_beat/periodictask/",
                                 {"action": "disable_tasks", "_selected_action": [watchdog.id, other.id]}, follow=True)
    assert "1 periodic task(s) left as they are" in response.content.decode()
    assert PeriodicTask.objects.get(id=watchdog.id).enabled and not PeriodicTask.objects.get(id=other.id).enabled
    page = admin_client.get(f"/admin/django_celery_beat/periodictask/{watchdog.id}/change/").content.decode()
    assert "WATCHDOG_INTERVAL_SECONDS" in page and 'name="_save"' not in page
    assert admin_client.get(f"/admin/django_celery_beat/intervalschedule/{every.id}/change/").status_code == 200
    assert admin_client.post(f"/admin/django_celery_beat/intervalschedule/{every.id}/change/",
                             {"every": "3600", "period": "seconds"}).status_code == 403
    listing = admin_client.get("/admin/django_celery_beat/periodictask/").content.decode()
    assert "next run" in listing.lower()
    from datetime import datetime

    from django.utils import timezone

    row = listing[listing.index(f"/{watchdog.id}/change/"):]
    shown = re.search(r'class="field-next_run">([^<]+)<', row[:row.index("</tr>")]).group(1)
    at = timezone.make_aware(datetime.strptime(shown, "%Y-%m-%d %H:%M:%S"))
    assert 0 <= (at - timezone.now()).total_seconds() <= 16  # never run: one interval from now


def test_job_form_takes_lists_one_per_line_and_choices_as_boxes(admin_client):
    from jobs.models import Job

    form = admin_client.get("/admin/jobs/job/add/?kind=research.digest").content.decode()
    assert '<textarea name="param__questions"' in form and 'type="checkbox" name="param__formats" value="pdf"' in form
    from django.contrib.auth import get_user_model

    orphan = admin_client.post("/admin/jobs/job/add/?kind=research.digest", _job_form(
        name="Digest", kind="research.digest", param__topic="durability"))
    assert orphan.status_code == 200 and "needs an owner" in orphan.content.decode()  # on the form, not a 500
    owner = get_user_model().objects.create_user("digest-owner")
    response = admin_client.post("/admin/jobs/job/add/?kind=research.digest", _job_form(
        name="Digest", kind="research.digest", owner=str(owner.pk), param__topic="durability",
        param__questions="What happens after a crash?\n\n  Who restores it?  \n", param__formats=["text", "pdf"],
        param__max_documents="5"))
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get(name="Digest")
    assert job.params == {"topic": "durability", "questions": ["What happens after a crash?", "Who restores it?"],
                          "formats": ["text", "pdf"], "max_documents": 5, "force_reprocess": False}
    page = admin_client.get(f"/admin/jobs/job/{job.id}/change/").content.decode()
    assert "What happens after a crash?\nWho restores it?</textarea>" in page
    checked = re.findall(r'<input type="checkbox" name="param__formats" value="(\w+)"[^>]*checked', page)
    assert sorted(checked) == ["pdf", "text"]


def test_cancel_requested_is_said_in_words_and_task_results_are_never_added_by_hand(admin_client):
    from django.utils import timezone

    healthy = JobRunFactory(status="PROGRESS")
    cancelled = JobRunFactory(status="PROGRESS", cancel_requested=True, cancel_requested_at=timezone.now())
    page = admin_client.get(f"/admin/jobs/jobrun/{healthy.id}/change/").content.decode()
    field = page.split("Cancel requested:", 1)[1].split("</div>", 2)
    assert "No" in "".join(field) and "icon-no" not in page
    assert "Yes, at " in admin_client.get(f"/admin/jobs/jobrun/{cancelled.id}/change/").content.decode()
    assert admin_client.get("/admin/django_celery_results/taskresult/add/").status_code == 403
    assert "/admin/django_celery_results/taskresult/add/" not in admin_client.get("/admin/").content.decode()
    assert "Profile summaries" in admin_client.get("/admin/").content.decode()


def test_choosing_a_kind_keeps_what_was_typed_and_a_finished_runs_page_names_its_document(admin_client):
    """The kind select reloads the form with the typed values in its address (job_form.js): they
    come back as the form's initial values, for the form's own fields only."""
    from tests.factories import DocumentFactory

    page = admin_client.get("/admin/jobs/job/add/", {"kind": "tests.countdown", "name": "Typed first",
                                                     "crontab": "0 3 * * *", "enabled": "", "csrfmiddlewaretoken": "x",
                                                     "not_a_field": "ignored"})
    form = page.context["adminform"].form
    assert form["name"].value() == "Typed first" and form["crontab"].value() == "0 3 * * *"
    assert not form["enabled"].value() and "not_a_field" not in form.initial and "param__steps" in form.fields

    document = DocumentFactory(title="Quarterly report.pdf")
    run = JobRunFactory(kind="documents.ingest", status="SUCCESS", args={"document_id": str(document.id)},
                        progress_step="indexing", progress_total=4, progress_current=4)
    page = admin_client.get(f"/admin/jobs/jobrun/{run.id}/change/").content.decode()
    assert f"Quarterly report.pdf ({document.id})" in page
    assert "indexing" not in page  # a succeeded run is past its last step
