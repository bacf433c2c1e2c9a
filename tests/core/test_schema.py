"""The API contract as real tools see it: a client generated from the live schema by
openapi-python-client does the whole journey, and schemathesis finds no 5xx and no answer
that contradicts the schema."""

import importlib
import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.schema import COMMON_ERRORS
from tests.support.worker import wait_until

SCHEMA_PATH = "/api/schema/?format=json"
CLIENT_PACKAGE = "generated_api_client"
ERROR_REF = "#/components/schemas/Error"


def _token_for(user) -> str:
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=user)[0].key


def _operations(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield method.upper(), path, operation


@pytest.mark.integration  # the anonymous throttle counts in the shared cache
def test_every_operation_is_described_json_only_and_documents_its_errors(client):
    schema = client.get(SCHEMA_PATH).json()
    for method, path, operation in _operations(schema):
        where = f"{method} {path}"
        summary = operation.get("summary") or ""
        assert summary and "\n" not in summary and "queryset" not in summary.lower(), where
        content = operation.get("requestBody", {}).get("content", {})
        if content:
            expected = ["multipart/form-data"] if path == "/api/documents/" else ["application/json"]
            assert list(content) == expected, where
        if path.startswith(("/api/schema", "/api/health")):
            continue
        for status in COMMON_ERRORS:
            body = operation["responses"][str(status)]["content"]["application/json"]["schema"]
            assert body == {"$ref": ERROR_REF}, where
    upload = schema["components"]["schemas"]["DocumentUploadRequest"]["properties"]["file"]
    assert upload == {**upload, "type": "string", "format": "binary"}
    assert schema["paths"]["/api/documents/"]["post"]["responses"]["413"]


@pytest.mark.django_db
def test_the_schema_offers_either_token_scheme_and_both_are_accepted(client, user):
    schema = client.get(SCHEMA_PATH).json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["tokenAuth"] == {**schemes["tokenAuth"], "type": "apiKey", "in": "header", "name": "Authorization"}
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    for _, path, operation in _operations(schema):
        if path.startswith("/api/runs/"):
            # Alternatives, one requirement each: a client sends one of them, never both.
            assert {"tokenAuth": []} in operation["security"] and {"bearerAuth": []} in operation["security"]
    key = _token_for(user)
    for scheme in ("Token", "Bearer"):
        assert client.get("/api/runs/", HTTP_AUTHORIZATION=f"{scheme} {key}").status_code == 200, scheme


def test_errors_come_in_one_shape(api):
    answers = [
        api.get(f"/api/runs/{uuid.uuid4()}/"),  # 404 from a viewset
        api.get("/api/no/such/endpoint/"),  # 404 from the URL resolver
        api.post("/api/jobs/", {"name": "x", "kind": "no.such.kind"}),  # 400 from a service
        api.post("/api/chat/sessions/", "{broken", content_type="application/json"),  # 400 from the parser
        api.post("/api/chat/sessions/", "title=x", content_type="application/x-www-form-urlencoded"),  # 415
        APIClient().get("/api/runs/"),  # 401, no credentials
    ]
    assert [a.status_code for a in answers] == [404, 404, 400, 400, 415, 401]
    for answer in answers:
        error = answer.json()["error"]
        assert set(error) == {"code", "message", "fields"} and error["message"], answer.content
    assert answers[2].json()["error"]["fields"]["kind"]


# --- the generated client -----------------------------------------------------------------

@pytest.fixture
def generated_client(live_server, tmp_path, user):
    """A client generated from the live schema, with no hand edits, authenticated as `user`."""
    schema_file = tmp_path / "schema.json"
    schema_file.write_bytes(httpx.get(f"{live_server.url}{SCHEMA_PATH}", timeout=30).content)
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(bin_dir / "openapi-python-client"), "generate", "--path", str(schema_file), "--meta", "none",
                    "--output-path", str(tmp_path / CLIENT_PACKAGE)], check=True, env=env, capture_output=True)
    sys.path.insert(0, str(tmp_path))
    try:
        package = importlib.import_module(CLIENT_PACKAGE)
        client = package.AuthenticatedClient(base_url=live_server.url, token=_token_for(user), prefix="Token",
                                             raise_on_unexpected_status=True, timeout=httpx.Timeout(30))
        yield client, _Generated()
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == CLIENT_PACKAGE or n.startswith(CLIENT_PACKAGE + ".")]:
            del sys.modules[name]


class _Generated:
    """The generated package's modules by attribute: `api__runs__runs_list` is `<package>.api.runs.runs_list`."""

    def __getattr__(self, dotted: str):
        return importlib.import_module(f"{CLIENT_PACKAGE}.{dotted.replace('__', '.')}")


def test_generated_client_does_the_whole_journey(generated_client, celery_worker, user):
    from documents.models import Document

    client, m = generated_client
    models, types = m.models, m.types

    # Upload a file (binary multipart) and poll its status until it is ready.
    text = b"Tomatoes need deep watering twice a week in summer. Basil likes the same sunny bed."
    upload = models.DocumentUploadRequest(file=types.File(payload=io.BytesIO(text), file_name="garden.txt"),
                                          title="Garden notes")
    answer = m.api__documents__documents_create.sync_detailed(client=client, body=upload)
    assert answer.status_code == 202 and answer.parsed.title == "Garden notes"
    document_id = answer.parsed.id
    wait_until(lambda: m.api__documents__documents_status_retrieve.sync(client=client, id=document_id).status
               == models.DocumentStatusEnum.READY, timeout=120, message="document ready")

    # Search finds it.
    found = m.api__search__search_retrieve.sync(client=client, q="how often to water tomatoes")
    assert found.results and found.results[0].document_id == document_id

    # Chat: a session, a message, the reply.
    session = m.api__chat__chat_sessions_create.sync(client=client, body=models.SessionInputRequest(title="Garden"))
    posted = m.api__chat__chat_sessions_messages_create.sync(
        client=client, id=session.id, body=models.MessageInputRequest(content="When do I water the tomatoes?"))
    assert posted.run.kind == "chat.reply"

    def reply():
        page = m.api__chat__chat_sessions_messages_list.sync(client=client, id=session.id, after=posted.message.id)
        return [message for message in page.results if message.role == models.RoleEnum.ASSISTANT]

    replies = wait_until(reply, timeout=60, message="assistant reply")
    assert "water" in replies[0].content.lower()

    # Jobs: the kinds, a job, a trigger.
    kinds = {k.kind for k in m.api__jobs__jobs_kinds_list.sync(client=client)}
    assert "jobs.ping" in kinds
    job = m.api__jobs__jobs_create.sync(client=client, body=models.JobInputRequest(name="Ping", kind="jobs.ping"))
    triggered = m.api__jobs__jobs_trigger_create.sync(client=client, id=job.id, body=models.TriggerInputRequest())
    assert triggered.kind == "jobs.ping" and triggered.job == job.id
    wait_until(lambda: m.api__runs__runs_retrieve.sync(client=client, id=triggered.id).status
               == models.RunStatusEnum.SUCCESS, timeout=60, message="job run")

    # A research digest: its run fans out into a child per document, then the digest cites it.
    research = m.api__jobs__jobs_create.sync(client=client, body=models.JobInputRequest(
        name="Garden digest", kind="research.digest", params={"topic": "watering tomatoes"}))
    digest_run = m.api__jobs__jobs_trigger_create.sync(client=client, id=research.id, body=models.TriggerInputRequest())
    done = wait_until(lambda: (r := m.api__runs__runs_retrieve.sync(client=client, id=digest_run.id)).status
                      == models.RunStatusEnum.SUCCESS and r, timeout=60, message="digest run")
    assert done.children.total == 1 and done.children.by_status["SUCCESS"] == 1
    kids = m.api__runs__runs_list.sync(client=client, parent=digest_run.id)
    assert [k.kind for k in kids.results] == ["research.process_document"]
    digests = m.api__digests__digests_list.sync(client=client, job=research.id)
    digest = m.api__digests__digests_retrieve.sync(client=client, id=digests.results[0].id)
    assert digest.run == digest_run.id and [d.id for d in digest.documents] == [document_id]
    assert digest.citations[0].document_id == document_id and not digest.partial
    assert m.api__jobs__jobs_retrieve.sync(client=client, id=research.id).latest_output["digest_id"] == digest.id

    # Runs: list, cancel a long one, retry it, read its log and the stats.
    slow = m.api__jobs__jobs_create.sync(client=client, body=models.JobInputRequest(
        name="Slow", kind="tests.countdown", params={"steps": 100, "interval": 0.3}))
    slow_run = m.api__jobs__jobs_trigger_create.sync(client=client, id=slow.id, body=models.TriggerInputRequest())
    listed = m.api__runs__runs_list.sync(client=client)
    assert slow_run.id in {r.id for r in listed.results}
    cancelled = m.api__runs__runs_cancel_create.sync(client=client, id=slow_run.id)
    assert cancelled.cancel_requested
    wait_until(lambda: m.api__runs__runs_retrieve.sync(client=client, id=slow_run.id).status
               == models.RunStatusEnum.REVOKED, timeout=60, message="cancelled run")
    retried = m.api__runs__runs_retry_create.sync(client=client, id=slow_run.id)
    assert retried.retry_of == slow_run.id
    m.api__runs__runs_cancel_create.sync(client=client, id=retried.id)
    ingestion_log = m.api__runs__runs_log_list.sync(client=client, id=answer.parsed.run.id)
    assert any("chunks" in entry.message for entry in ingestion_log.results)
    stats = m.api__runs__runs_stats_retrieve.sync(client=client)
    assert stats.by_status["SUCCESS"] >= 3 and stats.workers_online >= 1

    # The same runs in Celery's words: the 202's task_id, read back from the task API.
    assert answer.parsed.task_id == answer.parsed.run.id and posted.task_id == posted.run.id
    task = m.api__tasks__tasks_retrieve.sync(client=client, task_id=str(triggered.task_id))
    assert task.status == models.TaskStatusStatusEnum.SUCCESS and task.progress == 100.0
    unknown = m.api__tasks__tasks_retrieve.sync(client=client, task_id=str(uuid.uuid4()))
    assert unknown.status == models.TaskStatusStatusEnum.UNKNOWN
    assert m.api__tasks__tasks_stats_retrieve.sync(client=client).by_status["SUCCESS"] >= 3

    # Errors parse into the one documented shape; a document whose run was cleaned up still parses.
    missing = m.api__runs__runs_retrieve.sync_detailed(client=client, id=uuid.uuid4())
    assert missing.status_code == 404 and missing.parsed.error.code == "not_found"
    Document.objects.filter(id=document_id).update(run=None)
    assert m.api__documents__documents_retrieve.sync(client=client, id=document_id).run is None


# --- schemathesis -------------------------------------------------------------------------

# Bounded: enough examples per operation to reach the edges of every parameter, few enough that
# the ~30 operations finish in about a minute.
SCHEMATHESIS_EXAMPLES = 15
CONTRACT_CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
                   response_schema_conformance, response_headers_conformance]


@pytest.fixture
def live_schema(live_server):
    return schemathesis.openapi.from_url(f"{live_server.url}{SCHEMA_PATH}")


fuzzed = schemathesis.pytest.from_fixture("live_schema")


def _takes_input(ctx) -> bool:
    """An operation with parameters or a body; one without (health, stats, the kinds, the profile)
    is the same request every time, so one example of it says all that fifteen would."""
    definition = ctx.operation.definition.raw
    return bool(definition.get("parameters") or definition.get("requestBody"))


@fuzzed.include(_takes_input).parametrize()
@settings(max_examples=SCHEMATHESIS_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx_or_off_schema(case, user):
    case.call_and_validate(headers={"Authorization": f"Token {_token_for(user)}"}, checks=CONTRACT_CHECKS)


@fuzzed.exclude(_takes_input).parametrize()
@settings(max_examples=1, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_no_operation_without_input_answers_5xx_or_off_schema(case, user):
    case.call_and_validate(headers={"Authorization": f"Token {_token_for(user)}"}, checks=CONTRACT_CHECKS)
