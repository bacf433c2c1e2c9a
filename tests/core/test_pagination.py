"""Lists page by cursor at any depth, count exactly only while counting is cheap, and every list
the API and the admin serve reads its page off an index."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import counts
from core.pagination import PAGE_NUMBER_MAX_OFFSET
from tests.factories import DigestFactory, DocumentFactory, JobFactory, JobRunFactory, JobRunLogEntryFactory

pytestmark = pytest.mark.django_db

RUNS = 120  # two full pages of 50 and a part one


@pytest.fixture
def staff(api, user):
    """Staff who read everyone's objects (a Run viewer): the lists without an owner filter."""
    from core.roles import VIEWERS
    from tests.factories import operator_make

    operator_make(user, group=VIEWERS)
    return api


@pytest.fixture
def runs(user):
    return JobRunFactory.create_batch(RUNS, owner=user)


def _ids(page) -> list[str]:
    return [row["id"] for row in page["results"]]


def test_next_links_walk_every_run_once_newest_first_and_previous_walks_back(api, runs):
    pages = [api.get("/api/runs/").json()]
    while pages[-1]["next"]:
        assert "cursor=" in pages[-1]["next"] and "page=" not in pages[-1]["next"]
        pages.append(api.get(pages[-1]["next"]).json())
    walked = [run_id for page in pages for run_id in _ids(page)]
    newest_first = [str(run.id) for run in sorted(runs, key=lambda run: run.created_at, reverse=True)]
    assert walked == newest_first and [len(_ids(page)) for page in pages] == [50, 50, 20]
    assert all(page["count"] == RUNS for page in pages)
    assert pages[0]["previous"] is None and pages[-1]["next"] is None
    assert _ids(api.get(pages[-1]["previous"]).json()) == _ids(pages[1])
    assert _ids(api.get(pages[1]["previous"]).json()) == _ids(pages[0])


def test_a_page_by_number_is_the_same_page_and_links_on_by_cursor(api, runs):
    first, second = api.get("/api/runs/").json(), api.get("/api/runs/?page=2").json()
    assert _ids(second) == _ids(api.get(first["next"]).json())
    assert "cursor=" in second["next"] and _ids(api.get(second["previous"]).json()) == _ids(first)
    assert _ids(api.get("/api/runs/?page=last").json()) == _ids(api.get(second["next"]).json())


def test_filters_hold_across_cursor_pages(api, user):
    JobRunFactory.create_batch(60, owner=user, status="FAILURE")
    JobRunFactory.create_batch(10, owner=user)
    first = api.get("/api/runs/?status=FAILURE").json()
    rest = api.get(first["next"]).json()
    assert first["count"] == 60 and len(_ids(first)) + len(_ids(rest)) == 60 and rest["next"] is None
    assert {row["status"] for row in first["results"] + rest["results"]} == {"FAILURE"}


def test_a_page_past_the_numbered_ones_is_refused_saying_to_follow_next(api):
    deep = PAGE_NUMBER_MAX_OFFSET // 50 + 1
    answer = api.get(f"/api/runs/?page={deep}")
    assert answer.status_code == 400
    assert "follow `next`" in answer.json()["error"]["fields"]["page"][0]
    assert api.get(f"/api/runs/?page={deep - 1}").status_code == 404  # within reach, but empty: no such page


@pytest.mark.parametrize("cursor", ["%%%", "bm90IGEgY3Vyc29y",  # base64 of "not a cursor": no position, page one
                                    "cD1ub3QtYS1kYXRl",  # p=not-a-date
                                    "cD0lMDA=",  # p=%00
                                    "bz0tMQ=="])  # o=-1
def test_a_hand_made_cursor_is_a_404_or_a_page_never_a_500(api, runs, cursor):
    answer = api.get(f"/api/runs/?cursor={cursor}")
    assert answer.status_code in (200, 404), answer.content
    if answer.status_code == 404:
        assert answer.json()["error"]["code"]


def test_counts_exactly_up_to_the_limit_and_estimates_above(api, user, monkeypatch):
    JobRunFactory.create_batch(30, owner=user)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_jobrun")
    assert api.get("/api/runs/").json()["count"] == 30
    monkeypatch.setattr(counts, "COUNT_EXACT_UP_TO", 5)
    with CaptureQueriesContext(connection) as queries:
        estimated = api.get("/api/runs/").json()["count"]
    assert 6 <= estimated <= 90  # the planner's figure for about 30 rows, never below what was counted
    assert any(q["sql"].startswith("EXPLAIN") for q in queries)
    assert not any("COUNT(" in q["sql"] and "LIMIT" not in q["sql"] for q in queries)  # no count of it all


# --- every list off an index --------------------------------------------------------------------

BIG_TABLES = ("jobs_jobrun", "jobs_jobrunlogentry", "documents_document", "chat_message", "chat_chatsession",
              "research_digest", "django_celery_results_taskresult")


def _lists(user) -> list[str]:
    from chat.models import ChatSession

    run = JobRunFactory(owner=user, status="FAILURE")
    JobRunLogEntryFactory(run=run)
    job = JobFactory(owner=user)
    JobRunFactory(owner=user, job=job, parent=run)
    DocumentFactory(owner=user)
    DigestFactory(owner=user, job=job)
    session = ChatSession.objects.create(owner=user, title="t")
    return ["/api/runs/", "/api/runs/?status=FAILURE", "/api/runs/?kind=jobs.ping", f"/api/runs/?job={job.id}",
            f"/api/runs/?parent={run.id}", f"/api/runs/{run.id}/log/", "/api/documents/",
            "/api/documents/?status=ready", "/api/chat/sessions/", f"/api/chat/sessions/{session.id}/messages/",
            "/api/jobs/", f"/api/jobs/{job.id}/runs/", "/api/digests/", f"/api/digests/?job={job.id}"]


def _plans(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        answer = client.get(url)
    assert answer.status_code == 200, (url, answer.status_code)
    plans = []
    with connection.cursor() as cursor:
        # As the planner chooses for a large table: an index wherever one can serve.
        cursor.execute("SET LOCAL enable_seqscan = off")
        for query in queries:
            if query["sql"].startswith("SELECT") and any(f'"{table}"' in query["sql"] for table in BIG_TABLES):
                cursor.execute(f"EXPLAIN {query['sql']}")
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def _scans(plan: str) -> bool:
    return any(f"Seq Scan on {table}" in plan for table in BIG_TABLES)


@pytest.mark.parametrize("as_staff", [False, True], ids=["owner", "staff"])
def test_every_api_list_reads_its_page_off_an_index(api, user, as_staff):
    user.is_staff = as_staff
    user.save()
    scanned = [(url, plan) for url in _lists(user) for plan in _plans(api, url) if _scans(plan)]
    assert not scanned, scanned


def test_every_admin_changelist_reads_its_page_off_an_index(client, user):
    user.is_staff = user.is_superuser = True
    user.save()
    client.force_login(user)
    _lists(user)
    scanned = []
    for url in ["/admin/jobs/jobrun/", "/admin/jobs/jobrun/?status__exact=FAILURE", "/admin/documents/document/",
                "/admin/chat/message/", "/admin/chat/chatsession/", "/admin/research/digest/",
                "/admin/django_celery_results/taskresult/"]:
        scanned += [(url, plan) for plan in _plans(client, url) if _scans(plan)]
    assert not scanned, scanned
