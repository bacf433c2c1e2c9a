"""PostgreSQL's clock: the one every lease, due time and deadline is judged by (jobs.lifecycle
writes and compares them in SQL). A worker's own clock is only shown, and its offset from this one
is measured and reported (jobs.services.presence), never trusted."""

from __future__ import annotations

import time
from datetime import datetime

from django.db import connection


def database_now() -> datetime:
    """The database's time now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def clock_offset_seconds() -> float:
    """How far this process's clock is ahead of the database's (negative: behind), to about half a
    round trip: the database's time is taken as read at the midpoint of the question."""
    before = time.time()
    with connection.cursor() as cursor:
        cursor.execute("SELECT extract(epoch FROM clock_timestamp())")
        database = float(cursor.fetchone()[0])
    after = time.time()
    return round((before + after) / 2 - database, 3)
