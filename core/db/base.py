"""Django's PostgreSQL backend, with three additions: a server that stops answering costs a request
under a second (core.db.guard), a refused connection to the embedded server says how to start it,
and a kept connection's health is checked without a round trip."""

from __future__ import annotations

import select

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base
from psycopg.pq import TransactionStatus

from core.db.guard import GuardedConnection, database_breaker, server_answers

START_HINT = ("No database is reachable at {where}. With DATABASE_URL unset the service uses its embedded "
              "PostgreSQL: start it with `make services` (or `python -m devserver.embedded start`), or run "
              "`make run`; or set DATABASE_URL to your server.")


class _Psycopg:
    """psycopg as Django's backend sees it, its connections made as GuardedConnection."""

    connect = staticmethod(GuardedConnection.connect)

    def __getattr__(self, name):
        return getattr(psycopg, name)


class DatabaseWrapper(base.DatabaseWrapper):
    Database = _Psycopg()

    def get_new_connection(self, conn_params):
        host, port = conn_params.get("host") or "", int(conn_params.get("port") or 5432)
        breaker = database_breaker(host=host, port=port) if host else None
        if breaker is not None and breaker.open_until:
            # Found silent within the breaker's window, or asked again (quickly) once it has passed:
            # a connect would wait its whole timeout on a server that does not answer.
            if breaker.is_open or not server_answers(host=host, port=port, timeout=settings.DATABASE_PROBE_SECONDS):
                if not breaker.is_open:
                    breaker.trip(cause=TimeoutError("no answer"))
                raise psycopg.OperationalError(f"PostgreSQL at {host}:{port} does not answer; not tried again for "
                                               f"{breaker.seconds_left():.1f} s")
        try:
            connection = super().get_new_connection(conn_params)
        except psycopg.OperationalError as exc:
            if breaker is not None and isinstance(exc, psycopg.errors.ConnectionTimeout):
                breaker.trip(cause=exc)
            if not getattr(settings, "EMBEDDED_DATABASE", False):
                raise
            raise psycopg.OperationalError(f"{exc}\n{START_HINT.format(where=f'{host}:{port}')}") from exc
        if breaker is not None:
            breaker.reset()
        return connection

    def is_usable(self):
        """Whether a kept connection still works (CONN_HEALTH_CHECKS asks at the first query of every
        request and task). Django sends `SELECT 1`, a round trip each time; an idle connection has
        nothing to read unless its server ended it (stopped, restarted, the backend terminated:
        its goodbye or the close is waiting on the socket), so a look at the socket tells the same
        at no cost. A server gone silent reads as usable either way: that is the stall guard's."""
        connection = self.connection
        if connection is None or connection.closed:
            return False
        if connection.info.transaction_status != TransactionStatus.IDLE:
            return super().is_usable()
        poller = select.poll()  # not select(): a web process holding streams has descriptors past 1024
        try:
            poller.register(connection.fileno(), select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        except (OSError, ValueError, psycopg.Error):
            return False
