"""The database backend's health check of a kept connection (CONN_HEALTH_CHECKS), against the real
PostgreSQL: a connection its server ended is found unusable and replaced, and a live one is found
usable without a statement sent."""

from __future__ import annotations

import copy
import time

import pytest
from django.db import connections

from core.db.base import DatabaseWrapper
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.django_db


def _wrapper(**overrides) -> DatabaseWrapper:
    """Another of Django's connections to the suite's database, as a web process or worker keeps one."""
    return DatabaseWrapper({**copy.deepcopy(connections["default"].settings_dict), **overrides}, alias="kept")


def test_a_connection_its_server_ended_is_found_unusable_and_the_next_query_reconnects():
    kept = _wrapper()
    try:
        with kept.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            [backend] = cursor.fetchone()
        assert kept.is_usable()
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
        deadline = time.monotonic() + 5
        while kept.is_usable() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not kept.is_usable()

        kept.health_check_done = False  # as at the start of the next request
        with kept.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            assert cursor.fetchone()[0] != backend
    finally:
        kept.close()


def test_a_live_connection_is_found_usable_without_a_round_trip():
    real = connections["default"].settings_dict
    proxy = TcpProxy(target_host=real["HOST"], target_port=int(real["PORT"]))
    kept = _wrapper(HOST="127.0.0.1", PORT=str(proxy.port))
    try:
        kept.ensure_connection()
        proxy.freeze()  # a `SELECT 1` would now wait for an answer that never comes
        started = time.monotonic()
        assert kept.is_usable()
        assert time.monotonic() - started < 0.1
    finally:
        proxy.thaw()
        kept.close()
