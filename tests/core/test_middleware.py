"""Whatever the address or the state of the database, /api/ answers in the one JSON error shape and
the admin with a plain page, never a 500."""

import socket
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _shaped(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    return body


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/runs%0A/", "/api/ru%0Ans/", "/api/runs/%0A/", "/api/%0D%0A/"])
def test_a_line_break_in_an_api_address_is_a_json_404(client, settings, debug, path):
    settings.DEBUG = debug
    _shaped(client.get(path), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/%00/", "/api/runs/?status=%00", "/api/documents/?q=a%00b"])
def test_a_nul_anywhere_in_an_api_address_is_a_json_400(api, path):
    assert "NUL" in _shaped(api.get(path), 400, "invalid")["error"]["message"]


@pytest.mark.parametrize("path", ["/admin/jobs/jobrun/?status__exact=%00", "/admin/jobs/jobrun/?q=%00",
                                  "/admin/jobs/jobrun/%00/change/"])
def test_a_nul_in_an_admin_filter_is_a_400_page(client, path):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(path)
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("debug", [False, True])
def test_a_post_without_its_trailing_slash_is_told_the_address_to_use(api, settings, debug):
    settings.DEBUG = debug  # CommonMiddleware cannot redirect a POST: it raises with DEBUG, drops the body without
    body = _shaped(api.post("/api/jobs", {"name": "n"}, format="json"), 404, "not_found")
    assert body["error"]["message"].endswith("end with a slash: /api/jobs/")


@contextmanager
def database_unreachable():
    """The database really unreachable for the requests inside: the connection is closed and pointed
    at a port nobody listens on, as after PostgreSQL stopped; restored afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    real = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = closed_port
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["PORT"] = real


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("debug", [False, True])
def test_with_the_database_unreachable_the_api_answers_503_and_the_admin_a_plain_page(debug, settings, user):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    caller = APIClient(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    operator = Client()
    operator.force_login(UserFactory(is_staff=True, is_superuser=True))
    settings.DEBUG = debug
    with database_unreachable():
        answers = [caller.get("/api/runs/"), caller.post("/api/jobs/", {"name": "n", "kind": "jobs.ping"}, format="json"),
                   caller.get("/api/documents/")]
        anonymous = Client().get("/api/documents/")
        health = caller.get("/api/health/")
        admin = operator.get("/admin/jobs/jobrun/")
    for response in answers:
        _shaped(response, 503, "unavailable")
        assert int(response["Retry-After"]) > 0
    _shaped(anonymous, 401, "not_authenticated")  # no credentials: that much is known without the database
    # No token can be checked: the caller is told what anyone is (at once), and that the service is down.
    assert (health.status_code, health.json()) == (503, {"status": "down"})
    assert admin.status_code == 503 and b"database is unreachable" in admin.content
    # Back: the same clients are answered, with nothing restarted.
    assert caller.get("/api/runs/").status_code == 200
    assert operator.get("/admin/jobs/jobrun/").status_code == 200


class _SlowView:
    """A view that, asked with `wait`, holds its thread until let go: a search under way."""

    def __init__(self):
        import threading

        self.release, self.entered = threading.Event(), threading.Semaphore(0)

    def __call__(self, request):
        from django.http import HttpResponse

        if request.GET.get("wait"):
            self.entered.release()
            self.release.wait(10)
        return HttpResponse("ok")

    def hold(self, send, count: int) -> list:
        """`count` requests sent with `send(wait=1)`, each in a thread, all inside the view on return."""
        import threading

        holders = [threading.Thread(target=send, kwargs={"wait": "1"}) for _ in range(count)]
        for holder in holders:
            holder.start()
        for _ in holders:
            assert self.entered.acquire(timeout=5)
        return holders

    def let_go(self, holders: list) -> None:
        self.release.set()
        for holder in holders:
            holder.join(5)


def test_a_costly_request_past_the_callers_share_is_a_429_and_others_still_pass():
    """As many searches of one caller under way as it may have: one more is refused at once with
    Retry-After (the error shape under /api/, plain text in the admin); another caller's search,
    and the same caller's plain pages, go through; once one ends, the caller may search again."""
    import json

    from django.test import RequestFactory

    from core.middleware import COSTLY_REQUESTS_PER_CALLER, CostlyRequestLimitMiddleware

    view = _SlowView()
    limit = CostlyRequestLimitMiddleware(view)
    factory = RequestFactory()

    def search(token: str = "a", **params):
        return limit(factory.get("/api/search/", {"q": "wal", **params}, HTTP_AUTHORIZATION=f"Token {token}"))

    holders = view.hold(search, COSTLY_REQUESTS_PER_CALLER)
    refused = search("a")
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert json.loads(refused.content)["error"]["code"] == "throttled"
    admin = limit(factory.get("/admin/jobs/jobrun/", {"q": "timeout"}, HTTP_AUTHORIZATION="Token a"))
    assert admin.status_code == 429 and admin["Content-Type"].startswith("text/plain")
    assert search("b").status_code == 200  # another caller
    assert limit(factory.get("/api/runs/", HTTP_AUTHORIZATION="Token a")).status_code == 200  # not costly
    view.let_go(holders)
    assert search("a").status_code == 200 and not limit.in_flight


def test_the_costly_share_holds_across_web_processes():
    """Two web processes (two middleware instances: their in-process counts apart, the cache
    shared): a caller searching in one is refused in the other, and free again once it ends."""
    from django.test import RequestFactory

    from core.middleware import COSTLY_REQUESTS_PER_CALLER, CostlyRequestLimitMiddleware

    view = _SlowView()
    first, second = CostlyRequestLimitMiddleware(view), CostlyRequestLimitMiddleware(view)
    factory = RequestFactory()

    def search(process=first, **params):
        return process(factory.get("/api/search/", {"q": "wal", **params}, HTTP_AUTHORIZATION="Token shared"))

    holders = view.hold(search, COSTLY_REQUESTS_PER_CALLER)
    assert search(second).status_code == 429
    view.let_go(holders)
    assert search(second).status_code == 200
