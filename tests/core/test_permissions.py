"""Who may do what to alice's objects, over every endpoint of the API's schema and the admin's
actions and buttons, for six callers: alice herself, another user, staff with no permission, a Run
viewer, a Run operator and a superuser (core.permissions, core.roles). A refusal is a 403 in the one
error shape, or a 404 where the object's existence must not leak, and changes nothing."""

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.utils import timezone
from rest_framework.test import APIClient

from chat.models import ChatSession, Message
from core.roles import OPERATORS, VIEWERS
from documents.models import Document
from jobs.models import Job, JobRun
from tests.factories import (
    ChatSessionFactory,
    DigestFactory,
    DocumentFactory,
    JobFactory,
    JobRunFactory,
    MessageFactory,
    StaffFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

ROLES = ("owner", "another user", "staff", "viewer", "operator", "superuser")
# What each caller gets for alice's object: to read it, to act on it (the model's change
# permission), to delete it (delete), and for what only its owner does (post into her session).
READ = {"owner": 200, "another user": 404, "staff": 404, "viewer": 200, "operator": 200, "superuser": 200}
ACT = {"owner": "ok", "another user": 404, "staff": 404, "viewer": 403, "operator": "ok", "superuser": "ok"}
DELETE = {"owner": "ok", "another user": 404, "staff": 404, "viewer": 403, "operator": 403, "superuser": "ok"}
OWNER_ONLY = {"owner": "ok", "another user": 404, "staff": 404, "viewer": 403, "operator": 403, "superuser": 403}


def caller(role: str, alice):
    if role == "owner":
        return alice
    if role == "superuser":
        return UserFactory(is_staff=True, is_superuser=True)
    return {"another user": UserFactory, "staff": StaffFactory}.get(role, lambda: StaffFactory(
        groups=[VIEWERS if role == "viewer" else OPERATORS]))()


@pytest.fixture
def alices():
    alice = UserFactory(username="alice")
    job = JobFactory(owner=alice, kind="jobs.ping", name="alices-ping")
    failed = JobRunFactory(owner=alice, job=job, status="FAILURE", dead=True, attempts=1, max_attempts=1)
    waiting = JobRunFactory(owner=alice, status="QUEUED")
    document = DocumentFactory(owner=alice)
    session = ChatSessionFactory(owner=alice)
    MessageFactory(session=session)
    digest = DigestFactory(owner=alice)
    return {"alice": alice, "job": job, "failed": failed, "waiting": waiting, "document": document,
            "session": session, "digest": digest}


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# Every operation of the schema on alice's objects, with what decides it; the operations on the
# caller's own things (creating, listing, their profile) are in OWN below.
ON_ALICES = [
    ("GET", "/api/runs/{failed}/", READ), ("GET", "/api/runs/{failed}/log/", READ),
    ("POST", "/api/runs/{waiting}/cancel/", ACT), ("POST", "/api/runs/{failed}/retry/", ACT),
    ("POST", "/api/tasks/{waiting}/cancel/", ACT), ("POST", "/api/tasks/{failed}/retry/", ACT),
    ("GET", "/api/jobs/{job}/", READ), ("GET", "/api/jobs/{job}/runs/", READ),
    ("PATCH", "/api/jobs/{job}/", ACT), ("POST", "/api/jobs/{job}/trigger/", ACT),
    ("DELETE", "/api/jobs/{job}/", DELETE),
    ("GET", "/api/documents/{document}/", READ), ("GET", "/api/documents/{document}/status/", READ),
    ("POST", "/api/documents/{document}/reprocess/", ACT), ("DELETE", "/api/documents/{document}/", DELETE),
    ("GET", "/api/chat/sessions/{session}/", READ), ("GET", "/api/chat/sessions/{session}/messages/", READ),
    ("POST", "/api/chat/sessions/{session}/messages/", OWNER_ONLY),
    ("POST", "/api/chat/sessions/{session}/summarize/", OWNER_ONLY),
    ("DELETE", "/api/chat/sessions/{session}/", DELETE),
    ("GET", "/api/digests/{digest}/", READ),
]
BODIES = {"/api/jobs/{job}/": {"name": "renamed"}, "/api/chat/sessions/{session}/messages/": {"content": "Hello?"}}
OWN = {("GET", "/api/runs/"), ("GET", "/api/runs/stats/"), ("GET", "/api/tasks/stats/"), ("GET", "/api/tasks/{task_id}/"),
       ("GET", "/api/tasks/health-check/"), ("GET", "/api/jobs/"), ("POST", "/api/jobs/"), ("GET", "/api/jobs/kinds/"),
       ("GET", "/api/documents/"), ("POST", "/api/documents/"), ("GET", "/api/search/"),
       ("GET", "/api/chat/sessions/"), ("POST", "/api/chat/sessions/"), ("GET", "/api/chat/profile/"),
       ("POST", "/api/chat/profile/summarize/"), ("GET", "/api/digests/"), ("GET", "/api/health/")}


def _state(objects) -> dict:
    """What a refused request must leave as it was."""
    return {
        "runs": JobRun.objects.count(), "waiting": JobRun.objects.get(id=objects["waiting"].id).status,
        "cancel": JobRun.objects.get(id=objects["waiting"].id).cancel_requested,
        "job": list(Job.objects.filter(id=objects["job"].id).values_list("name", flat=True)),
        "document": Document.objects.filter(id=objects["document"].id).exists(),
        "session": ChatSession.objects.filter(id=objects["session"].id).exists(), "messages": Message.objects.count(),
    }


def test_the_matrix_covers_every_operation_of_the_schema():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    named = {(method, path.replace("{failed}", "{id}").replace("{waiting}", "{id}").replace("{job}", "{id}")
              .replace("{document}", "{id}").replace("{session}", "{id}").replace("{digest}", "{id}"))
             for method, path, _ in ON_ALICES}
    named = {(m, p.replace("/api/tasks/{id}/", "/api/tasks/{task_id}/")) for m, p in named}
    assert operations == named | OWN


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "rule"), ON_ALICES, ids=[f"{m} {p}" for m, p, _ in ON_ALICES])
def test_each_caller_may_do_to_alices_objects_exactly_what_their_permissions_say(alices, role, method, path, rule):
    user = caller(role, alices["alice"])
    url = path.format(**{name: getattr(obj, "pk", None) for name, obj in alices.items()})
    before = _state(alices)
    response = client_for(user).generic(method, url, data=json.dumps(BODIES.get(path, {})),
                                        content_type="application/json")
    expected = rule[role]
    if expected == "ok":
        assert response.status_code in (200, 201, 202, 204), (response.status_code, response.content[:300])
        if role != "owner" and method != "GET":  # a staff action on another's object is in its history
            assert LogEntry.objects.filter(user=user).exists()
        return
    assert response.status_code == expected, (response.status_code, response.content[:300])
    if expected >= 400:
        error = response.json()["error"]
        assert error["code"] == {403: "forbidden", 404: "not_found"}[expected]
    assert _state(alices) == before


def test_lists_and_stats_show_everyones_only_with_the_view_permission(alices):
    from jobs.models import WorkerPresence

    WorkerPresence.objects.create(name="default@a-host", queues=["jobs"], seen_at=timezone.now())
    expectations = {"another user": 0, "staff": 0, "viewer": 3, "operator": 3, "superuser": 3}
    for role, runs in expectations.items():
        user = caller(role, alices["alice"])
        client = client_for(user)
        assert client.get("/api/runs/").json()["count"] == runs, role
        assert client.get("/api/documents/").json()["count"] == (1 if runs else 0), role
        assert client.get("/api/chat/sessions/").json()["count"] == (1 if runs else 0), role
        stats = client.get("/api/runs/stats/").json()
        assert (stats["workers"] == []) == (not runs), role  # staff's names only for those who may see


def test_the_owner_sees_through_the_api_who_cancelled_and_retried_her_runs(alices):
    operator = caller("operator", alices["alice"])
    client_for(operator).post(f"/api/runs/{alices['waiting'].pk}/cancel/")
    client_for(operator).post(f"/api/runs/{alices['failed'].pk}/retry/")
    mine = client_for(alices["alice"])
    cancelled = mine.get(f"/api/runs/{alices['waiting'].pk}/").json()["history"]
    retried = mine.get(f"/api/runs/{alices['failed'].pk}/").json()["history"]
    assert [(entry["by"], entry["action"]) for entry in cancelled] == [(operator.username, "Cancelled through the API")]
    assert retried[0]["by"] == operator.username and retried[0]["action"].startswith("Retried through the API as run")


def test_a_deactivated_or_demoted_operator_loses_their_reach_at_once(alices):
    operator = caller("operator", alices["alice"])
    client = client_for(operator)
    assert client.get(f"/api/runs/{alices['failed'].pk}/").status_code == 200
    operator.is_staff = False
    operator.save()
    assert client.get(f"/api/runs/{alices['failed'].pk}/").status_code == 404
    operator.is_staff, operator.is_active = True, False
    operator.save()
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=operator)
    anonymous = APIClient()
    assert anonymous.get("/api/runs/", HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 401


def test_health_names_no_worker_or_host_to_a_user(alices, settings):
    from jobs.models import WorkerPresence

    WorkerPresence.objects.create(name="default@secret-host", queues=["jobs"], seen_at=timezone.now())
    body = client_for(caller("another user", alices["alice"])).get("/api/health/").content.decode()
    assert "secret-host" not in body


# --- the admin ---------------------------------------------------------------------------------

def _admin(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", ["staff", "viewer", "operator", "superuser"])
def test_the_admins_actions_and_buttons_are_each_callers_permissions(alices, role):
    user = caller(role, alices["alice"])
    admin = _admin(user)
    waiting, failed, job = alices["waiting"], alices["failed"], alices["job"]
    runs_before = JobRun.objects.count()
    page = admin.get(f"/admin/jobs/jobrun/{failed.pk}/change/")
    cancel = admin.post(f"/admin/jobs/jobrun/{waiting.pk}/cancel/")
    listed = admin.post("/admin/jobs/jobrun/", {"action": "retry_runs", "_selected_action": [failed.pk]})
    run_now = admin.post("/admin/jobs/job/", {"action": "run_now", "_selected_action": [job.pk]})
    steers = role in ("operator", "superuser")
    if role == "staff":  # no permission at all: not even the pages
        assert page.status_code == 403
    else:
        assert page.status_code == 200
        assert ('id="run-retry"' in page.content.decode()) == steers
    assert (cancel.status_code == 302) == steers and (cancel.status_code == 403) == (not steers)
    assert JobRun.objects.get(id=waiting.id).status == ("REVOKED" if steers else "QUEUED")
    # Retry and Run now each made a run, or nothing at all.
    assert JobRun.objects.count() == runs_before + (2 if steers else 0), (listed.status_code, run_now.status_code)
    if steers:
        history = admin.get(f"/admin/jobs/jobrun/{waiting.pk}/history/").content.decode()
        assert "Cancelled" in history


def test_a_deactivated_users_schedules_stop_at_once(alices):
    from jobs.services.definitions import job_create

    scheduled = job_create(name="hourly", kind="jobs.ping", schedule={"every_seconds": 3600}, owner=alices["alice"])
    alices["alice"].is_active = False
    alices["alice"].save()
    assert not Job.objects.get(id=scheduled.id).enabled
    assert "deactivated" in LogEntry.objects.get(object_id=str(scheduled.id)).change_message
