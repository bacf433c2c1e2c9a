"""The per-server breaker: one failure skips the server for its window, for every client of it."""

import logging

import pytest

from core.breaker import breaker_for

pytestmark = pytest.mark.unit


@pytest.fixture
def breaker(settings):
    settings.BREAKER_SECONDS = 60
    breaker = breaker_for("redis://127.0.0.1:1/0")
    breaker.reset()
    yield breaker
    breaker.reset()


def test_every_client_of_one_server_shares_its_breaker_whatever_the_scheme_user_or_database(breaker):
    assert breaker_for("redis://:secret@127.0.0.1:1/9") is breaker
    assert breaker_for("rediss://user:pw@127.0.0.1:1") is breaker
    assert breaker_for("redis://127.0.0.1:2/0") is not breaker


def test_a_failure_opens_it_for_the_window_and_a_success_closes_it(breaker, settings):
    assert not breaker.is_open
    breaker.trip(cause=ConnectionError("refused"))
    assert breaker.is_open and 59 < breaker.seconds_left() <= 60
    breaker.reset()
    assert not breaker.is_open
    settings.BREAKER_SECONDS = 0
    breaker.trip(cause=ConnectionError("refused"))
    assert not breaker.is_open  # the window has passed: the next call is a real try


def test_an_outage_is_logged_once_when_it_begins_and_once_when_it_ends(breaker, caplog):
    with caplog.at_level(logging.INFO, logger="core.breaker"):
        for _ in range(5):
            breaker.trip(cause=TimeoutError("no answer"))
        breaker.reset()
        breaker.reset()
    assert [record.getMessage() for record in caplog.records] == [
        "server unreachable; skipped for the breaker's window", "server answers again"]
    assert caplog.records[0].cause == "TimeoutError" and "secret" not in caplog.text
