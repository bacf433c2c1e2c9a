"""Research digests through real workers, PostgreSQL and Redis: fan-out into child runs, the
compose step exactly once, partial digests and their retry, cancel, schedules and owner scoping."""

import threading
import time

import pytest
from django.db import transaction
from django.utils import timezone

from documents.models import Document, DocumentStatus
from documents.services import document_upload
from integrations.llm import HEALTH_CACHE_KEY
from jobs.constants import Queue
from jobs.models import JobRun
from research.models import Digest, DigestSource, Finding
from research.services import PROCESS_KIND
from tests.support import worker as worker_support
from tests.support.fake_llm import Step
from tests.support.files import upload
from tests.support.worker import wait_until

# What a digest run does needs committed rows: its workers read them from other processes.
WITH_WORKERS = pytest.mark.django_db(transaction=True)

# Five notes on one topic (how a database keeps data safe), each in its own words.
NOTES = {
    "wal.txt": "Write-ahead logging keeps data durable: every change is written to the log and flushed to disk "
               "before the data pages, so after a crash the database replays the log to recover.",
    "fsync.txt": "Durability depends on fsync. If the operating system acknowledges a write that is still in a "
                 "volatile cache, a power loss can lose committed transactions and corrupt the data files.",
    "backups.txt": "Base backups with continuous archiving of the write-ahead log allow point-in-time recovery: "
                   "restore the backup, then replay archived log segments up to the moment before the mistake.",
    "replication.txt": "Synchronous replication waits until a standby has confirmed the commit record, so a "
                       "committed transaction survives the loss of the primary server.",
    "checksums.txt": "Data checksums detect corruption of data pages on disk; a damaged page is reported when it "
                     "is read instead of silently returning wrong rows.",
}
TOPIC = "How does a database keep committed data safe from crashes and corruption?"
POISON = "Quarantined-appendix-7731"


def ingest(user, name: str, text: str) -> Document:
    with transaction.atomic():
        document, _ = document_upload(owner=user, upload=upload(name, text.encode()), title=name)
    return document


def ingest_all(user, notes: dict[str, str]) -> dict[str, Document]:
    documents = {name: ingest(user, name, text) for name, text in notes.items()}
    wait_until(lambda: Document.objects.filter(id__in=[d.id for d in documents.values()],
                                               status=DocumentStatus.READY).count() == len(documents),
               timeout=180, message="documents ready")
    return documents


def define(api, params: dict, name: str = "safety digest", schedule=None) -> int:
    response = api.post("/api/jobs/", {"name": name, "kind": "research.digest", "params": params,
                                       "schedule": schedule}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def trigger(api, job_id: int) -> str:
    response = api.post(f"/api/jobs/{job_id}/trigger/", {}, format="json")
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def finished(run_id: str, timeout: float = 120) -> JobRun:
    return wait_until(lambda: (run := JobRun.objects.get(id=run_id)).is_finished and run, timeout=timeout,
                      message=f"run {run_id} to finish")


def children(run_id: str):
    return JobRun.objects.filter(parent_id=run_id, kind=PROCESS_KIND)


# --- the pure parts ------------------------------------------------------------------------------

def test_uploaded_after_takes_a_date_or_a_date_time_and_refuses_the_rest():
    from datetime import datetime
    from datetime import timezone as tz

    from research.errors import ResearchError
    from research.services import uploaded_after_parse

    assert uploaded_after_parse("2026-01-31") == datetime(2026, 1, 31, tzinfo=tz.utc)
    assert uploaded_after_parse("2026-01-31T08:00:00+02:00") == datetime(2026, 1, 31, 6, tzinfo=tz.utc)
    assert uploaded_after_parse(None) is None
    for bad in ("last tuesday", "2026-02-30", "2026-01-31T25:00"):
        with pytest.raises(ResearchError) as caught:
            uploaded_after_parse(bad)
        assert caught.value.field == "params.uploaded_after"


def test_the_same_questions_asked_differently_share_their_findings(settings):
    from research.services import _request_from

    settings.AI_SERVER_URL = ""
    one = _request_from({"topic": "Durability ", "questions": ["After a crash?"]})
    extractive = one.question_key
    assert extractive == _request_from({"topic": "durability", "questions": ["after a crash?"]}).question_key
    assert extractive != _request_from({"topic": "durability"}).question_key
    settings.AI_SERVER_URL = "http://127.0.0.1:9"  # an LLM's findings are not the passages'
    assert extractive != _request_from({"topic": "Durability", "questions": ["After a crash?"]}).question_key
    assert one.queries == ("Durability", "After a crash?") and _request_from({"topic": "t"}).queries == ("t",)


def test_each_findings_citations_get_the_digests_numbers():
    from research.services import _citations_numbered

    def source(title, refs, content):
        return DigestSource(title=title, document_id=None,
                            finding=Finding(content=content, citations=[{"ref": r, "chunk_index": r, "page": None,
                                                                         "quote": f"q{r}"} for r in refs]))

    citations, sections = _citations_numbered([source("a", [1, 2], "x [1] y [2]"),
                                               source("b", [1], "z [1] and an invented [7]")])
    assert [(c["ref"], c["title"], c["quote"]) for c in citations] == [(1, "a", "q1"), (2, "a", "q2"), (3, "b", "q1")]
    assert sections == [("a", "x [1] y [2]"), ("b", "z [3] and an invented ")]


def test_an_unread_document_says_why():
    from research.services import _why_unread

    assert _why_unread(JobRun(status="FAILURE", error="PermanentError: the document is failed, not ready")) == \
        "PermanentError: the document is failed, not ready"
    assert _why_unread(JobRun(status="REVOKED")) == "its run was cancelled"
    assert _why_unread(None) == "not read"


# --- extractive (no LLM configured): the session worker -------------------------------------------

@WITH_WORKERS
def test_a_digest_over_five_documents_has_five_children_and_one_digest_citing_them(celery_worker, api, user):
    documents = ingest_all(user, NOTES)
    job_id = define(api, {"topic": TOPIC, "questions": ["What happens after a crash?"]})
    run_id = trigger(api, job_id)
    run = finished(run_id)
    assert run.status == "SUCCESS", run.error

    kids = children(run_id)
    assert kids.count() == 5 and set(kids.values_list("status", flat=True)) == {"SUCCESS"}
    assert {k.args["document_id"] for k in kids} == {str(d.id) for d in documents.values()}
    assert all(k.job_id is None and k.owner_id == user.id and k.queue == Queue.RESEARCH for k in kids)

    shown = api.get(f"/api/runs/{run_id}/").json()
    assert shown["children"] == {"total": 5, "by_status": {"SUCCESS": 5}}
    assert shown["result"]["partial"] is False and shown["result"]["read"] == 5
    listed = api.get(f"/api/runs/?parent={run_id}").json()
    assert listed["count"] == 5 and {r["parent"] for r in listed["results"]} == {run_id}

    digest = Digest.objects.get(run_id=run_id)
    assert digest.job_id == job_id and digest.method == "extractive" and not digest.partial
    assert set(digest.documents.values_list("id", flat=True)) == {d.id for d in documents.values()}
    cited = {c["document_id"] for c in digest.citations}
    assert cited == {str(d.id) for d in documents.values()}
    for citation in digest.citations:  # every citation is used in the text, and points at a real chunk
        assert f"[{citation['ref']}]" in digest.content
        assert Document.objects.get(id=citation["document_id"]).chunks.filter(
            chunk_index=citation["chunk_index"]).exists()
    for name in NOTES:
        assert f"## {name}" in digest.content

    body = api.get(f"/api/digests/{digest.id}/").json()
    assert body["run"] == run_id and len(body["documents"]) == 5 and body["unread"] == []
    assert [d["id"] for d in api.get(f"/api/digests/?job={job_id}").json()["results"]] == [digest.id]
    assert api.get(f"/api/jobs/{job_id}/").json()["latest_output"]["digest_id"] == digest.id

    # Chat, asked about the topic, has the digest as context (here with no LLM: it is quoted).
    from chat.models import ChatSession, Message
    from chat.services import message_post

    with transaction.atomic():
        asked = message_post(session=ChatSession.objects.create(owner=user),
                             content="What happens to committed data after a crash?")
    reply = wait_until(lambda: Message.objects.filter(reply_to=asked, role="assistant").first(), timeout=60,
                       message="the chat reply")
    assert {"digest_id": digest.id, "title": f"Research digest: {TOPIC}"} in reply.citations
    assert f"Research digest “{TOPIC}”" in reply.content and "## wal.txt" in reply.content

    # Asked again, nothing changed: every finding is reused and no child is made.
    again = finished(trigger(api, job_id))
    assert again.status == "SUCCESS" and again.result["reused"] == 5 and not children(again.id).exists()
    assert Finding.objects.filter(document__owner=user).count() == 5
    # force_reprocess reads them all again.
    forced = api.post(f"/api/jobs/{job_id}/trigger/", {"params": {"topic": TOPIC, "force_reprocess": True,
                                                                   "questions": ["What happens after a crash?"]}},
                      format="json").json()["id"]
    assert finished(forced).status == "SUCCESS" and children(forced).count() == 5


@WITH_WORKERS
def test_documents_are_chosen_by_relevance_and_filter(celery_worker, api, user):
    documents = ingest_all(user, {**NOTES, "garden.txt": "Water tomatoes deeply twice a week; mulch keeps the "
                                                          "soil moist and the roots cool in summer."})
    run = finished(trigger(api, define(api, {"topic": "durability of committed transactions after a crash",
                                             "max_documents": 2})))
    chosen = list(DigestSource.objects.filter(run=run).order_by("rank").values_list("title", flat=True))
    assert len(chosen) == 2 and "garden.txt" not in chosen

    # Named documents are read if relevant enough; the others are named as left out.
    only = [str(documents["garden.txt"].id), str(documents["wal.txt"].id)]
    run = finished(trigger(api, define(api, {"topic": "write-ahead log", "documents": only}, name="named")))
    assert set(DigestSource.objects.filter(run=run).values_list("title", flat=True)) == {"wal.txt"}
    assert [n["title"] for n in Digest.objects.get(run=run).not_relevant] == ["garden.txt"]

    later = finished(trigger(api, define(api, {"topic": TOPIC, "uploaded_after": timezone.now().isoformat()},
                                         name="nothing new")))
    assert later.status == "SUCCESS" and later.result["documents"] == 0
    assert "None of your ready documents matched" in Digest.objects.get(run=later).content


@WITH_WORKERS
def test_another_user_sees_none_of_it(celery_worker, api, other_api, user):
    ingest_all(user, {"wal.txt": NOTES["wal.txt"]})
    job_id = define(api, {"topic": TOPIC})
    run = finished(trigger(api, job_id))
    child = children(run.id).get()
    digest = Digest.objects.get(run=run)

    for path in (f"/api/digests/{digest.id}/", f"/api/runs/{run.id}/", f"/api/runs/{child.id}/",
                 f"/api/jobs/{job_id}/", f"/api/runs/{run.id}/log/"):
        response = other_api.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", path
    assert other_api.post(f"/api/runs/{child.id}/retry/").status_code == 404
    assert other_api.get("/api/digests/").json()["count"] == 0
    assert other_api.get(f"/api/runs/?parent={run.id}").status_code == 400
    assert other_api.get(f"/api/digests/?job={job_id}").status_code == 400


@WITH_WORKERS
def test_params_are_checked_when_the_job_is_defined(api):
    for params, field in (({}, "params.topic"), ({"topic": "x", "max_documents": 10_000}, "params.max_documents"),
                          ({"topic": "x", "uploaded_after": "last tuesday"}, "params.uploaded_after"),
                          ({"topic": "x", "formats": ["exe"]}, "params.formats.0"),
                          ({"topic": "x", "documents": ["not-an-id"]}, "params.documents.0"),
                          ({"topic": "   "}, "params.topic")):
        response = api.post("/api/jobs/", {"name": "bad", "kind": "research.digest", "params": params}, format="json")
        assert response.status_code == 400, params
        assert response.json()["error"]["fields"].keys() == {field}, (params, response.json())
    good = {"topic": "x", "uploaded_after": "2026-01-31", "formats": ["pdf"], "max_documents": 100}
    assert api.post("/api/jobs/", {"name": "good", "kind": "research.digest", "params": good},
                    format="json").status_code == 201


@WITH_WORKERS
def test_a_scheduled_digest_fires_from_beat(celery_worker, api, user, beats):
    ingest_all(user, {"wal.txt": NOTES["wal.txt"], "fsync.txt": NOTES["fsync.txt"]})
    job_id = define(api, {"topic": TOPIC}, name="every 2 s", schedule={"every_seconds": 2})
    beats("research-beat")
    digest = wait_until(lambda: Digest.objects.filter(job_id=job_id, run__triggered_by="schedule").first(),
                        timeout=90, message="a digest from the schedule")
    assert digest.documents.count() == 2 and digest.run.status == "SUCCESS"


# --- with an LLM server: a worker of its own ----------------------------------------------------

@pytest.fixture(scope="module")
def research_worker(fake_llm, celery_worker_process, django_db_setup, django_db_blocker):
    """The session worker steps aside for one with the fake LLM server, three processes, and at
    most two children of a digest in the broker at once."""
    with django_db_blocker.unblock():
        proc = worker_support.worker_instead_of(celery_worker_process, "research-worker", concurrency=3,
                                                AI_SERVER_URL=fake_llm.url, AI_API_KEY="sk-test", AI_TIMEOUT="20",
                                                RESEARCH_MAX_CHILDREN_IN_FLIGHT="2", CANCEL_GRACE_SECONDS="5")
    yield proc
    proc.stop()


@pytest.fixture
def llm(research_worker, fake_llm, transactional_db):
    from django.core.cache import cache

    fake_llm.reset()
    cache.delete(HEALTH_CACHE_KEY)
    return fake_llm


@WITH_WORKERS
def test_progress_rolls_up_from_children_at_most_two_in_the_broker(llm, api, user):
    ingest_all(user, NOTES)
    llm.default = Step(delay=1.0, content="The note says data survives [1].")
    run_id = trigger(api, define(api, {"topic": TOPIC}))
    seen, in_broker = [], []
    while not (run := JobRun.objects.get(id=run_id)).is_finished:
        # Not the hand-over: its children all ended, it no longer awaits them, and its final step is
        # queued or claimed but has not yet reported a step of its own.
        handing_over = (run.progress_step == "processing papers" and not run.awaiting_children
                        and run.progress_current == run.progress_total)
        if not handing_over:
            seen.append((run.progress_step, run.progress_current, run.progress_total, run.progress_message,
                         run.eta_seconds, run.awaiting_children))
        in_broker.append(children(run_id).filter(status__in=("QUEUED", "STARTED", "PROGRESS", "RETRY"),
                                                 dispatched_at__isnull=False).count())
        time.sleep(0.2)
    assert run.status == "SUCCESS", run.error
    processing = [s for s in seen if s[0] == "processing papers"]
    assert processing and all(s[2] == 5 and s[3].startswith("Processing 5 papers") and s[5] for s in processing)
    assert [s[1] for s in processing] == sorted(s[1] for s in processing)  # the count only goes up
    assert len({s[1] for s in processing}) >= 3  # children end in pairs (two in flight): 0, 2, 4
    assert any(s[4] for s in processing if 0 < s[1] < 5)  # an ETA from the rate of ended children
    assert max(in_broker) == 2
    digest = Digest.objects.get(run_id=run_id)
    assert digest.method == "llm" and digest.content == "The note says data survives [1]."
    assert len(llm.requests) == 6  # five findings and one digest


@WITH_WORKERS
def test_two_children_ending_at_the_same_moment_compose_once(llm, api, user):
    ingest_all(user, {"wal.txt": NOTES["wal.txt"], "fsync.txt": NOTES["fsync.txt"]})
    together = threading.Barrier(2)
    llm.script = [Step(together=together, content="Finding [1]."), Step(together=together, content="Finding [1].")]
    run_id = trigger(api, define(api, {"topic": TOPIC}))
    run = finished(run_id)
    assert run.status == "SUCCESS" and together.n_waiting == 0 and not together.broken
    ends = sorted(children(run_id).values_list("finished_at", flat=True))
    assert (ends[1] - ends[0]).total_seconds() < 0.5
    assert Digest.objects.filter(run_id=run_id).count() == 1
    assert len(llm.requests) == 3  # two findings, one digest: composed once

    # Redelivered messages of the children and the parent, and a late announcement, change nothing.
    from jobs.services.fan_out import run_children_progress
    from jobs.services.runs import run_dispatch

    for redelivered in [*children(run_id), run]:
        run_dispatch(run=redelivered)
    assert run_children_progress(parent_id=run_id) is False
    time.sleep(3)
    assert Digest.objects.filter(run_id=run_id).count() == 1 and len(llm.requests) == 3


@WITH_WORKERS
def test_a_child_failing_for_good_gives_a_partial_digest_and_its_retry_reads_only_that_document(llm, api, user):
    notes = {"wal.txt": NOTES["wal.txt"], "fsync.txt": NOTES["fsync.txt"],
             "appendix.txt": f"{NOTES['checksums.txt']} {POISON}"}
    documents = ingest_all(user, notes)
    llm.refuse_containing = POISON
    run_id = trigger(api, define(api, {"topic": TOPIC}))
    run = finished(run_id)
    assert run.status == "SUCCESS" and run.result["partial"] is True
    failed = children(run_id).get(status="FAILURE")
    assert failed.args["document_id"] == str(documents["appendix.txt"].id) and failed.dead
    digest = Digest.objects.get(run_id=run_id)
    assert digest.partial and digest.documents.count() == 2
    assert digest.unread == [{"document_id": str(documents["appendix.txt"].id), "title": "appendix.txt",
                              "error": failed.error}]
    assert "400" in failed.error and "## Not read\n- appendix.txt:" in digest.content
    assert api.get(f"/api/runs/{run_id}/").json()["children"]["by_status"] == {"SUCCESS": 2, "FAILURE": 1}

    llm.refuse_containing = None
    before = len(llm.requests)
    response = api.post(f"/api/runs/{run_id}/retry/")
    assert response.status_code == 202
    retry = finished(response.json()["id"])
    assert retry.status == "SUCCESS" and retry.retry_of_id == run.id and retry.result["partial"] is False
    rerun = children(retry.id).get()
    assert rerun.args["document_id"] == str(documents["appendix.txt"].id) and rerun.retry_of_id == failed.id
    assert len(llm.requests) - before == 2  # the one document, then the digest
    fresh = Digest.objects.get(run=retry)
    assert fresh.documents.count() == 3 and fresh.unread == [] and retry.result["reused"] == 2
    # The failed child was retried: it has left the dead letters.
    assert not JobRun.objects.dead_letters().filter(id=failed.id).exists()


@WITH_WORKERS
def test_cancelling_the_parent_mid_fan_out_stops_every_child_and_composes_nothing(llm, api, user):
    ingest_all(user, NOTES)
    llm.default = Step(delay=3.0)
    run_id = trigger(api, define(api, {"topic": TOPIC}))
    wait_until(lambda: children(run_id).filter(status__in=("STARTED", "PROGRESS")).exists(), timeout=60,
               message="a child to run")
    response = api.post(f"/api/runs/{run_id}/cancel/")
    assert response.status_code == 202 and response.json()["status"] == "REVOKED"
    cancelled_at = timezone.now()
    wait_until(lambda: not children(run_id).exclude(status="REVOKED").exists(), timeout=30,
               message="every child revoked")
    time.sleep(5)  # long enough for a child still queued to have run
    assert JobRun.objects.get(id=run_id).status == "REVOKED"
    assert children(run_id).count() == 5
    assert not children(run_id).filter(started_at__gt=cancelled_at).exists()
    assert children(run_id).filter(started_at__isnull=True).count() >= 3  # never started
    assert not Digest.objects.filter(run_id=run_id).exists()
    assert not Finding.objects.filter(document__owner=user).exists()


@WITH_WORKERS
def test_run_job_wait_shows_the_roll_up(llm, api, user):
    import io

    from django.core.management import call_command

    ingest_all(user, {name: NOTES[name] for name in ("wal.txt", "fsync.txt", "backups.txt", "replication.txt")})
    llm.default = Step(delay=1.0, content="Finding [1].")
    define(api, {"topic": TOPIC}, name="watched digest")
    out = io.StringIO()
    call_command("run_job", "watched digest", "--wait", stdout=out)
    lines = out.getvalue().splitlines()
    rolled = [line for line in lines if "processing papers Processing 4 papers" in line]
    assert rolled and any("ETA" in line for line in rolled), lines
    assert any("composing" in line for line in lines) and "SUCCESS" in lines[-2], lines
    assert '"partial": false' in lines[-1]


# --- the bodies called directly with a fake run context (no worker) ------------------------------

@pytest.mark.django_db
def test_a_digest_run_called_directly_fans_out_reads_each_document_and_composes_once(settings):
    from jobs.services.runs import run_enqueue
    from research.services import digest_run, document_process
    from tests.factories import UserFactory
    from tests.support.run_context import FakeRunContext, document_ready

    settings.AI_SERVER_URL = ""
    owner = UserFactory()
    for name in ("wal.txt", "fsync.txt", "replication.txt"):
        document_ready(owner=owner, text=NOTES[name].encode(), name=name)
    run = run_enqueue(kind="research.digest", args={"topic": TOPIC, "max_documents": 3}, owner=owner)
    parent = FakeRunContext(id=str(run.id))

    assert digest_run(ctx=parent) is None and parent.awaiting_children
    sources = list(DigestSource.objects.filter(run=run).order_by("rank"))
    assert len(sources) == 3 and all(source.child_id for source in sources)
    for source in sources:
        result = document_process(ctx=FakeRunContext(id=str(source.child_id)), source_id=source.pk)
        assert result["method"] == "extractive" and result["passages"] >= 1

    composed = digest_run(ctx=FakeRunContext(id=str(run.id), attempt=2))
    digest = Digest.objects.get(run=run)
    assert composed == {**composed, "digest_id": digest.pk, "documents": 3, "read": 3, "partial": False}
    assert {s.title for s in sources} <= {c["title"] for c in digest.citations}
    assert Finding.objects.count() == 3


@pytest.mark.django_db
def test_a_digest_reads_and_cites_nothing_under_the_relevance_floor(settings):
    """The question of the report that found licence text cited: unrelated documents the search
    still ranks are named as not relevant enough, never read, and no citation falls under the floor."""
    from documents.selectors import documents_closeness
    from jobs.services.runs import run_enqueue
    from research.services import DIGEST_RELEVANCE_FLOOR, digest_run, document_process
    from tests.factories import UserFactory
    from tests.support.run_context import FakeRunContext, document_ready

    settings.AI_SERVER_URL = ""
    owner = UserFactory()
    licence = ("Licensed under the Apache License, Version 2.0 (the \"License\"); you may not use this file except "
               "in compliance with the License. Unless required by applicable law or agreed to in writing, "
               "software distributed under the License is distributed on an \"AS IS\" BASIS, WITHOUT WARRANTIES "
               "OR CONDITIONS OF ANY KIND, either express or implied.")
    contents = ("Contents. 1 Getting started. 2 Choosing a theme. 3 Keyboard shortcuts. 4 Fonts and colours. "
                "5 Printing. 6 Index.")
    for name, text in (("wal.txt", NOTES["wal.txt"]), ("fsync.txt", NOTES["fsync.txt"]), ("LICENSE", licence),
                       ("contents.txt", contents)):
        document_ready(owner=owner, text=text.encode(), name=name)
    topic = "How does the database keep committed data safe?"
    run = run_enqueue(kind="research.digest", args={"topic": topic}, owner=owner)
    parent = FakeRunContext(id=str(run.id))
    assert digest_run(ctx=parent) is None
    sources = list(DigestSource.objects.filter(run=run))
    left_out = parent.checkpoints["not_relevant"]
    assert {s.title for s in sources} == {"wal.txt", "fsync.txt"}, left_out
    assert {n["title"] for n in left_out} == {"LICENSE", "contents.txt"}
    assert all(n["closeness"] < DIGEST_RELEVANCE_FLOOR for n in left_out)
    for source in sources:
        document_process(ctx=FakeRunContext(id=str(source.child_id)), source_id=source.pk)
    digest_run(ctx=FakeRunContext(id=str(run.id), attempt=2, checkpoints=dict(parent.checkpoints)))
    digest = Digest.objects.get(run=run)
    assert {n["title"] for n in digest.not_relevant} == {"LICENSE", "contents.txt"}
    assert "## Not relevant enough" in digest.content and not digest.partial
    assert {c["title"] for c in digest.citations} == {"wal.txt", "fsync.txt"}
    for citation in digest.citations:  # each cited passage is itself close enough to the question
        closeness = documents_closeness(user=owner, queries=[citation["quote"]], document_ids=[citation["document_id"]])
        assert closeness[citation["document_id"]] > 0.9  # the quote is the passage
    assert all(documents_closeness(user=owner, queries=[topic], document_ids=[c["document_id"]])[c["document_id"]]
               >= DIGEST_RELEVANCE_FLOOR for c in digest.citations)


@pytest.mark.django_db
def test_a_digest_whose_documents_could_not_be_read_fails_for_good():
    from core.errors import PermanentError
    from research.services import _request_from, digest_compose
    from tests.factories import DigestSourceFactory
    from tests.support.run_context import FakeRunContext

    source = DigestSourceFactory(run__args={"topic": TOPIC})
    with pytest.raises(PermanentError, match="none of the 1 chosen documents could be read"):
        digest_compose(ctx=FakeRunContext(id=str(source.run_id)), run=source.run,
                       request=_request_from(source.run.args))
    assert not Digest.objects.exists()


@pytest.mark.django_db
def test_a_document_with_no_passage_is_left_out_with_no_closeness_not_a_made_up_one(settings):
    """Named in the params but with nothing indexed, a document has no closest passage: it is left
    out as null and said so in words, never as a similarity of −1.00."""
    from jobs.services.runs import run_enqueue
    from research.services import closeness_described, digest_run
    from tests.factories import DocumentFactory, UserFactory
    from tests.support.run_context import FakeRunContext, document_ready

    settings.AI_SERVER_URL = ""
    owner = UserFactory()
    read = document_ready(owner=owner, text=NOTES["wal.txt"].encode(), name="wal.txt")
    empty = DocumentFactory(owner=owner, title="scanned-without-text.pdf")
    run = run_enqueue(kind="research.digest", args={"topic": "How is a crash recovered?",
                                                    "documents": [str(read.id), str(empty.id)]}, owner=owner)
    parent = FakeRunContext(id=str(run.id))
    digest_run(ctx=parent)
    left_out = parent.checkpoints["not_relevant"]
    assert left_out == [{"document_id": str(empty.id), "title": "scanned-without-text.pdf", "closeness": None}]
    assert closeness_described(None) == "no passage to compare"
    assert closeness_described(0.123).startswith("closest passage 0.12, under ")
