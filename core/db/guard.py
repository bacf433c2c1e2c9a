"""A PostgreSQL that stops answering (frozen, or cut off by the network) without closing its
connections: the statements waiting on it are cut, so a request answers 503 within a second
instead of hanging until gunicorn kills its worker.

libpq has no client-side read timeout, and a frozen server's kernel still acknowledges every
packet, so neither TCP keepalives nor `tcp_user_timeout` notice. Every wait of our connections on
the server (a statement, a commit, the health check's `SELECT 1`) is therefore registered here; a
monitor thread in each process asks the server, once a wait has lasted DATABASE_STALL_SECONDS,
whether it is alive: a fresh connection's SSLRequest, which a live postmaster answers with one
byte however busy its backends are. Alive, the wait goes on (a slow statement is not an outage;
`statement_timeout` is the server's business). Silent, every wait on that server is cut (its
socket shut down, so psycopg raises OperationalError at once) and the server's breaker trips, so
for BREAKER_SECONDS new connections fail at once, and after that the first one asks the same
question before paying a connect timeout.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

import psycopg
from django.conf import settings

from core.breaker import Breaker, breaker_for

logger = logging.getLogger(__name__)

# What a client sends to ask for TLS: length 8 and the SSLRequest code. A live server answers one
# byte ('S' or 'N') before any authentication, so the question needs no credentials.
_SSL_REQUEST = struct.pack("!II", 8, 80877103)


def server_answers(*, host: str, port: int, timeout: float) -> bool:
    """Whether the PostgreSQL server at host:port (host a directory for a Unix socket) answers
    within `timeout`."""
    try:
        if host.startswith("/"):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: object = os.path.join(host, f".s.PGSQL.{port}")
        else:
            probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
            address = (host, port)
        with probe:
            probe.settimeout(timeout)
            probe.connect(address)
            probe.sendall(_SSL_REQUEST)
            return len(probe.recv(1)) == 1
    except OSError:
        return False


def database_breaker(*, host: str, port: int) -> Breaker:
    return breaker_for(f"postgres://{host}:{port}" if not host.startswith("/") else host)


@dataclass(eq=False)
class _Wait:
    fileno: int
    host: str
    port: int
    since: float = field(default_factory=time.monotonic)


class _Monitor:
    """One per process (started again in a forked child): the waits in flight, and the thread that
    looks at the oldest of them."""

    def __init__(self) -> None:
        self.waits: set[_Wait] = set()
        self.changed = threading.Condition()
        self.pid: int | None = None
        # The thread sleeps without a deadline only while nothing waits; otherwise it wakes at the
        # oldest wait's deadline, which a newer wait cannot come before. So only a wait that finds
        # it idle wakes it: waking it for every statement cost a thread switch per statement.
        self.idle = False

    def begin(self, wait: _Wait) -> None:
        with self.changed:
            if self.pid != os.getpid():  # first wait in this (possibly forked) process
                self.pid = os.getpid()
                self.waits = set()
                self.idle = False
                threading.Thread(target=self._loop, daemon=True, name="database-stall-guard").start()
            self.waits.add(wait)
            if self.idle:
                self.idle = False
                self.changed.notify()

    def end(self, wait: _Wait) -> None:
        with self.changed:
            self.waits.discard(wait)

    def _loop(self) -> None:
        while True:
            stall = settings.DATABASE_STALL_SECONDS
            with self.changed:
                while not self.waits:
                    self.idle = True
                    self.changed.wait()
                oldest = min(wait.since for wait in self.waits)
                due = oldest + stall - time.monotonic()
                if due > 0:
                    self.changed.wait(due)
                    continue
                stalled = [wait for wait in self.waits if time.monotonic() - wait.since >= stall]
            for host, port in {(wait.host, wait.port) for wait in stalled}:
                self._judge(host=host, port=port, stalled=[w for w in stalled if (w.host, w.port) == (host, port)])

    def _judge(self, *, host: str, port: int, stalled: list[_Wait]) -> None:
        breaker = database_breaker(host=host, port=port)
        if not breaker.is_open and server_answers(host=host, port=port, timeout=settings.DATABASE_PROBE_SECONDS):
            for wait in stalled:
                wait.since = time.monotonic()  # a slow statement: asked again after another stall
            return
        breaker.trip(cause=TimeoutError(f"no answer from PostgreSQL at {host}:{port}"))
        with self.changed:
            for wait in stalled:
                if wait in self.waits:  # still waiting: the socket is still this connection's
                    self.waits.discard(wait)
                    _shut(wait.fileno)
        logger.warning("database statements cut: the server does not answer",
                       extra={"server": f"{host}:{port}", "statements": len(stalled),
                              "stall_seconds": settings.DATABASE_STALL_SECONDS})


def _shut(fileno: int) -> None:
    try:
        sock = socket.socket(fileno=os.dup(fileno))
    except OSError:
        return
    with sock:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


_monitor = _Monitor()


class GuardedConnection(psycopg.Connection):
    """psycopg's connection, whose waits on the server are watched by the stall guard, and whose
    connect gives up after DATABASE_CONNECT_TIMEOUT_SECONDS (psycopg, like libpq, allows no less
    than 2 s through the conninfo)."""

    @classmethod
    def _connect_gen(cls, conninfo: str = "", *, timeout: float = 0.0):
        limit = settings.DATABASE_CONNECT_TIMEOUT_SECONDS
        return super()._connect_gen(conninfo, timeout=min(timeout, limit) if timeout else limit)

    _server: tuple[int, str, int] | None = None

    def wait(self, gen, interval=0.1):
        if self._server is None:  # asked of libpq once: a connection keeps its socket and server
            info = self.pgconn
            try:
                self._server = (info.socket, info.host.decode(), int(info.port or 5432))
            except psycopg.Error:  # no socket: psycopg raises its own error in the wait
                return super().wait(gen, interval)
        fileno, host, port = self._server
        wait = _Wait(fileno=fileno, host=host, port=port)
        _monitor.begin(wait)
        try:
            return super().wait(gen, interval)
        finally:
            _monitor.end(wait)
