"""`make run` while its Redis or its PostgreSQL is stopped or frozen, tried as a
client would: every request is answered within a second (202 for work, the lists as usual, or the
one JSON error shape), nothing accepted is lost, and everything finishes once the server is back.

One stack for the module, on servers of its own, with the request-side timeout as shipped."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.support.stack import OwnStack
from tests.support.worker import wait_until

pytestmark = pytest.mark.worker

BREAKER_SECONDS = 3
# Longer than two breaker windows and than the workers' broker timeout, so
# requests after a window has closed and workers that lost their connection are both tried.
OUTAGE_SECONDS = 7
# What the issue of a request under any outage may cost: never the client's own timeout.
ANSWER_WITHIN_SECONDS = 1.0
FINISHED = {"SUCCESS", "FAILURE", "REVOKED"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    marker = str(time.time_ns())
    # Warm-up as in `make run`: the models load while the first outage is on, not after it.
    stack = OwnStack(tmp_path_factory.mktemp("outages"), REDIS_TIMEOUT_SECONDS="0.2", BREAKER_SECONDS=str(BREAKER_SECONDS),
                     DATABASE_STALL_SECONDS="0.3", DATABASE_PROBE_SECONDS="0.4", DATABASE_CONNECT_TIMEOUT_SECONDS="0.7",
                     WORKER_BROKER_TIMEOUT_SECONDS="2", WORKER_STOP_GRACE_SECONDS="2", WORKER_WARM_UP="true",
                     OUTAGE_TEST_MARK=marker)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop(f"OUTAGE_TEST_MARK={marker}")


@pytest.fixture(scope="module")
def alice(stack):
    with stack.api_client("alice") as client:
        yield client


@pytest.fixture(scope="module")
def work(alice):
    """What alice can start: a chat session and a job of her own."""
    session = alice.post("/api/chat/sessions/", json={}).json()["id"]
    job = alice.post("/api/jobs/", json={"name": f"ping-{uuid.uuid4().hex[:6]}", "kind": "jobs.ping"}).json()["id"]
    return {"session": session, "job": job}


def _requests(work: dict, n: int, *, stats: bool = True):
    yield "POST", f"/api/chat/sessions/{work['session']}/messages/", {"json": {"content": f"question {n}"}}
    if n <= 2:  # a few uploads: each ingestion takes a worker seconds once the outage is over
        yield "POST", "/api/documents/", {"files": {"file": (f"note-{n}.txt", f"log {uuid.uuid4()}\n".encode() * 30,
                                                              "text/plain")}}
    yield "POST", f"/api/jobs/{work['job']}/trigger/", {"json": {}}
    yield "GET", "/api/runs/", {}
    yield "GET", "/api/documents/", {}
    if stats:
        yield "GET", "/api/runs/stats/", {}


def _use_during(client: httpx.Client, work: dict, *, seconds: float, stats: bool = True) -> tuple[list[str], list[tuple]]:
    """Post work and read lists for `seconds`; returns the runs accepted and every answer that broke
    a promise (a status other than 202 or 200, not JSON, or later than a second)."""
    accepted, broken = [], []
    deadline, n = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        n += 1
        for method, path, options in _requests(work, n, stats=stats):
            started = time.monotonic()
            try:
                response = client.request(method, path, **options)
            except httpx.HTTPError as exc:
                broken.append((method, path, type(exc).__name__))
                continue
            took = time.monotonic() - started
            expected = 202 if method == "POST" else 200
            if response.status_code != expected or took > ANSWER_WITHIN_SECONDS or \
                    not response.headers.get("content-type", "").startswith("application/json"):
                broken.append((method, path, response.status_code, round(took, 3), response.text[:200]))
            elif method == "POST":
                accepted.append(response.json()["run"]["id"] if "run" in response.json() else response.json()["id"])
        time.sleep(0.3)
    return accepted, broken


def _cancel_one_and_read_the_admin(client: httpx.Client, operator: httpx.Client, accepted: list[str]) -> list[tuple]:
    """A cancel during the outage is accepted (the database flag is what counts), and the admin's
    pages answer; returns what broke a promise."""
    broken = []
    for response in (client.post(f"/api/runs/{accepted[0]}/cancel/"), operator.get("/admin/"),
                     operator.get("/admin/jobs/jobrun/")):
        if response.status_code not in (200, 202) or response.elapsed.total_seconds() > ANSWER_WITHIN_SECONDS:
            broken.append((str(response.request.url), response.status_code, response.elapsed.total_seconds()))
    return broken


def _all_finish(client: httpx.Client, run_ids: list[str], *, timeout: float) -> dict[str, str]:
    def statuses():
        return {run_id: client.get(f"/api/runs/{run_id}/").json()["status"] for run_id in run_ids}

    try:
        wait_until(lambda: set(statuses().values()) <= FINISHED, timeout=timeout, interval=1,
                   message="every run accepted during the outage to finish")
    except AssertionError as exc:
        unfinished = [client.get(f"/api/runs/{run_id}/").json() for run_id, status in statuses().items()
                      if status not in FINISHED]
        raise AssertionError(f"{exc}; {len(unfinished)} of {len(run_ids)} not finished: " + "; ".join(
            f"{run['kind']} {run['status']} after {run['attempts']} attempt(s), queue {run['queue']}"
            for run in unfinished[:5])) from None
    return statuses()


@pytest.fixture(scope="module")
def operator(stack):
    client = stack.admin_client()
    yield client
    client.close()


def _ingestion_under_way(client: httpx.Client) -> str:
    """An upload whose ingestion is running now and has a couple of seconds' work left."""
    text = "".join(f"Night {n}: the keeper trimmed the wick and logged the weather. " for n in range(300))
    run_id = client.post("/api/documents/", files={"file": ("log.txt", text.encode(), "text/plain")}).json()["task_id"]
    wait_until(lambda: client.get(f"/api/runs/{run_id}/").json()["status"] == "PROGRESS", timeout=30, interval=0.1,
               message="the ingestion to be under way")
    return run_id


def test_with_redis_stopped_work_is_accepted_and_finishes_once_it_is_back(stack, alice, work, operator):
    # A task that ends inside the outage cannot acknowledge its message: its worker must still
    # take the work waiting for it once the broker is back.
    ending_inside = _ingestion_under_way(alice)
    stack.redis_stop()
    try:
        accepted, broken = _use_during(alice, work, seconds=OUTAGE_SECONDS)
        broken += _cancel_one_and_read_the_admin(alice, operator, accepted)
        # Still inside the outage: on a loaded machine the ingestion may need longer than the
        # requests above took, so the outage lasts until it has ended (it needs no broker to end).
        ended_inside = wait_until(
            lambda: (status := alice.get(f"/api/runs/{ending_inside}/").json()["status"]) in FINISHED and status,
            timeout=120, interval=0.5, message="the ingestion under way to end while Redis is stopped")
    finally:
        stack.services_start()
    assert broken == []
    assert len(accepted) >= 2 * 5 + 2
    assert ended_inside == "SUCCESS"
    # Generous: an upper bound on a loaded machine, not a measure of speed.
    finished = _all_finish(alice, accepted, timeout=180)
    assert finished.pop(accepted[0]) == "REVOKED"
    assert set(finished.values()) == {"SUCCESS"}
    stack.wait_healthy(timeout=30)


def test_with_redis_frozen_work_is_accepted_and_finishes_once_it_thaws(stack, alice, work, operator):
    stack.redis_freeze()
    try:
        accepted, broken = _use_during(alice, work, seconds=OUTAGE_SECONDS)
        broken += _cancel_one_and_read_the_admin(alice, operator, accepted)
        anonymous = httpx.get(f"{stack.base}/api/health/", timeout=5)
        checks = alice.get("/api/health/").json()["checks"]
    finally:
        stack.redis_thaw()
    assert broken == []
    assert len(accepted) >= 2 * 5 + 2
    # The web tier is serving: degraded, not down (which would take it out of a load balancer).
    assert (anonymous.status_code, anonymous.json()) == (200, {"status": "degraded"})
    assert {name: checks[name]["status"] for name in ("database", "cache", "broker", "workers")} == {
        "database": "ok", "cache": "error", "broker": "error", "workers": "unknown"}
    finished = _all_finish(alice, accepted, timeout=180)
    assert finished.pop(accepted[0]) == "REVOKED"
    assert set(finished.values()) == {"SUCCESS"}
    # The workers and beat that waited on the frozen broker reconnected by themselves.
    stack.wait_healthy(timeout=30)
    assert int(alice.get("/api/health/").json()["checks"]["workers"]["detail"].split()[0]) >= 4


def _down(response: httpx.Response) -> httpx.Response | None:
    return response if response.status_code == 503 else None


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.request.url, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize("outage", ["stopped", "frozen"])
def test_with_postgres_down_every_api_answer_is_a_json_503_within_a_second_and_it_recovers_without_a_restart(
        stack, alice, work, operator, outage):
    begin, end = {"stopped": (stack.postgres_stop, stack.services_start),
                  "frozen": (stack.postgres_freeze, stack.postgres_thaw)}[outage]
    begin()
    try:
        answers = []
        for n in range(3):
            for method, path, options in _requests(work, n):
                started = time.monotonic()
                answers.append((alice.request(method, path, **options), time.monotonic() - started))
        # Anonymous callers share a probe at most HEALTH_ANON_CACHE_SECONDS old (2 s in the test settings).
        anonymous = wait_until(lambda: _down(httpx.get(f"{stack.base}/api/health/", timeout=5)), timeout=5,
                               message="anonymous health to say down")
        with_token = alice.get("/api/health/")
        started = time.monotonic()
        admin = operator.get("/admin/jobs/jobrun/")
        answers_admin_within = time.monotonic() - started
    finally:
        end()
    for response, took in answers:
        _assert_unavailable(response)
        assert took < ANSWER_WITHIN_SECONDS, (response.request.url, took)
    # No token can be checked without the database: every caller is told "down", and why not more.
    for health in (anonymous, with_token):
        assert (health.status_code, health.json()) == (503, {"status": "down"})
    assert admin.status_code == 503 and "database is unreachable" in admin.text
    assert admin.headers["content-type"].startswith("text/html") and answers_admin_within < ANSWER_WITHIN_SECONDS

    # Back: the same requests answer as before, from the same web processes.
    wait_until(lambda: alice.get("/api/runs/").status_code == 200, timeout=30, message="the API to answer again")
    # A web process that found the server silent skips it until its breaker's window has ended.
    time.sleep(BREAKER_SECONDS)
    # (Not the stats: with the broker up they wait the whole worker ping, about a second.)
    accepted, broken = _use_during(alice, work, seconds=1, stats=False)
    assert broken == [] and accepted
    assert set(_all_finish(alice, accepted, timeout=60).values()) == {"SUCCESS"}


def test_with_the_roles_connections_used_up_health_fails_the_database_and_open_connections_go_on(stack, alice, work):
    """The service's role may make no new connection (its limit, as when it has used them all): the
    connections already open keep serving, health says why the database check fails, within a
    second, and what was accepted finishes once connections are allowed again."""
    from urllib.parse import urlsplit

    import psycopg

    from devserver.embedded import APP_CONNECTION_LIMIT

    database = urlsplit(stack.services_env()["DATABASE_URL"])  # the service's role; the operator's below
    superuser = psycopg.connect(host=database.hostname, port=database.port, dbname="app", user="postgres",
                                password=(stack.local_dir / "postgres.password").read_text().strip(), autocommit=True)
    for _ in range(8):  # every request thread with its connection open
        alice.get("/api/runs/")
    superuser.execute("ALTER ROLE app CONNECTION LIMIT 0")
    try:
        started = time.monotonic()
        health = alice.get("/api/health/")
        took = time.monotonic() - started
        accepted, refused = [], []
        for n in range(4):
            response = alice.post(f"/api/chat/sessions/{work['session']}/messages/", json={"content": f"limited {n}"})
            if response.status_code == 202:
                accepted.append(response.json()["run"]["id"])
            else:
                _assert_unavailable(response)
                refused.append(response)
    finally:
        superuser.execute(f"ALTER ROLE app CONNECTION LIMIT {APP_CONNECTION_LIMIT}")
        superuser.close()
    assert health.status_code == 503 and health.json()["status"] == "down"
    check = health.json()["checks"]["database"]
    assert check["status"] == "error" and "used all the connections it may hold" in check["detail"], check
    assert took < ANSWER_WITHIN_SECONDS
    assert accepted, "the open connections went on serving"
    assert set(_all_finish(alice, accepted, timeout=180).values()) == {"SUCCESS"}
    stack.wait_healthy(timeout=60)
