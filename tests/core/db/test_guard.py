"""The stall guard against the real PostgreSQL, through a forwarder the test freezes: a server that
stops answering costs a statement the stall and one question, a slow statement on a live server is
left alone, and within the breaker's window a new connection is refused without waiting."""

from __future__ import annotations

import copy
import time

import psycopg
import pytest
from django.db import OperationalError, connections

from core.db.base import DatabaseWrapper
from core.db.guard import GuardedConnection, database_breaker, server_answers
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def frozen_able(settings):
    """A forwarder to the suite's PostgreSQL, its breaker closed before and after."""
    real = connections["default"].settings_dict
    proxy = TcpProxy(target_host=real["HOST"], target_port=int(real["PORT"]))
    settings.DATABASE_STALL_SECONDS, settings.DATABASE_PROBE_SECONDS, settings.BREAKER_SECONDS = 0.3, 0.4, 60
    breaker = database_breaker(host="127.0.0.1", port=proxy.port)
    breaker.reset()
    yield proxy
    proxy.thaw()
    breaker.reset()


def _connect(proxy: TcpProxy) -> psycopg.Connection:
    real = connections["default"].settings_dict
    return GuardedConnection.connect(host="127.0.0.1", port=proxy.port, user=real["USER"],
                                     password=real["PASSWORD"] or None, dbname="postgres", autocommit=True)


def _wrapper(proxy: TcpProxy) -> DatabaseWrapper:
    """Django's connection, as a web process has it, to the server behind the forwarder."""
    return DatabaseWrapper({**copy.deepcopy(connections["default"].settings_dict), "HOST": "127.0.0.1",
                            "PORT": str(proxy.port), "NAME": "postgres"}, alias="guarded")


def test_a_statement_on_a_server_that_stops_answering_is_cut_within_a_second(frozen_able):
    connection = _connect(frozen_able)
    assert connection.execute("SELECT pg_sleep(1)").fetchone() == ("",)  # slow, alive: left alone
    frozen_able.freeze()
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        connection.execute("SELECT 1")
    assert 0.3 <= time.monotonic() - started < 1.0
    assert database_breaker(host="127.0.0.1", port=frozen_able.port).is_open


@pytest.fixture
def own_connections(django_db_blocker):
    """Connections of the test's own, to the `postgres` database: no test data is touched."""
    with django_db_blocker.unblock():
        yield


def test_within_the_window_a_new_connection_fails_at_once_and_after_it_asks_before_connecting(frozen_able,
                                                                                               own_connections):
    frozen_able.freeze()
    breaker = database_breaker(host="127.0.0.1", port=frozen_able.port)
    assert not server_answers(host="127.0.0.1", port=frozen_able.port, timeout=0.2)
    breaker.trip(cause=TimeoutError("found silent"))
    wrapper = _wrapper(frozen_able)
    started = time.monotonic()
    with pytest.raises(OperationalError, match="does not answer"):
        wrapper.ensure_connection()
    assert time.monotonic() - started < 0.1

    breaker.open_until = time.monotonic() - 1  # the window has passed; the server is still silent
    started = time.monotonic()
    with pytest.raises(OperationalError, match="does not answer"):
        wrapper.ensure_connection()
    # The question's timeout (0.4 s), not the connect timeout (3 s in the suite's settings).
    assert time.monotonic() - started < 1.0 and breaker.is_open

    frozen_able.thaw()
    breaker.open_until = time.monotonic() - 1
    wrapper.ensure_connection()
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    assert not breaker.open_until  # closed again by the connection that worked
    wrapper.close()


def test_a_server_that_answers_is_found_alive_and_a_closed_port_is_not(frozen_able):
    assert server_answers(host="127.0.0.1", port=frozen_able.port, timeout=1)
    import socket

    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()
    assert not server_answers(host="127.0.0.1", port=port, timeout=1)
