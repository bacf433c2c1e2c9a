"""The embedded servers' bookkeeping and locks: remembered ports, read-only URLs, the passwords of
Redis and PostgreSQL, and a .local/ that other accounts on the host can neither read nor log in from."""

import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from devserver import embedded

BASE_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def own_port_claims(tmp_path, monkeypatch):
    """This module's port choices claim nothing on the host's own registry."""
    monkeypatch.setattr(embedded, "PORT_CLAIMS", tmp_path / "ports.claims")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_remembered_port_taken_by_another_program_is_replaced_and_said(tmp_path, capsys):
    state = tmp_path / "pg.port"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        state.write_text(str(taken))
        chosen = embedded._choose_port(state, embedded.PREFERRED_PG_PORT, what="PostgreSQL")
    assert chosen != taken
    assert state.read_text() == str(chosen)
    assert f"port {taken} is taken by another program; using {chosen}" in capsys.readouterr().out


def test_a_port_taken_as_the_server_starts_is_left_for_the_next_free_one(tmp_path, capsys):
    """Between the check that a port is free and the server's own bind, an outgoing connection can
    take it (the kernel hands out ports of this range): the server is started again on another."""
    state, log = tmp_path / "redis.port", tmp_path / "redis.log"
    state.write_text(str(_free_port()))
    tried = []

    def start(port: int, log_from: int) -> None:
        tried.append(port)
        if len(tried) == 1:
            with open(log, "a") as lines:
                lines.write(f"Could not create server TCP listening socket 127.0.0.1:{port}: bind: Address already in use\n")
            raise subprocess.CalledProcessError(1, "redis-server")

    started = embedded._start_on_a_free_port(state, embedded.PREFERRED_REDIS_PORT, what="Redis", log=log, start=start)
    assert started == tried[1] != tried[0]
    assert state.read_text() == str(started)
    assert f"port {tried[0]} is taken by another program as the server started; using {started}" in capsys.readouterr().out


def test_a_server_that_fails_for_another_reason_is_not_started_again(tmp_path):
    state, log = tmp_path / "pg.port", tmp_path / "postgres.log"
    state.write_text(str(_free_port()))
    log.write_text("Address already in use (said by an earlier start, before this one)\n")
    tried = []

    def start(port: int, log_from: int) -> None:
        tried.append(port)
        with open(log, "a") as lines:
            lines.write("FATAL: data directory has wrong ownership\n")
        raise subprocess.CalledProcessError(1, "pg_ctl")

    with pytest.raises(subprocess.CalledProcessError):
        embedded._start_on_a_free_port(state, embedded.PREFERRED_PG_PORT, what="PostgreSQL", log=log, start=start)
    assert len(tried) == 1


def test_a_free_remembered_port_is_kept(tmp_path):
    state = tmp_path / "redis.port"
    free = _free_port()
    state.write_text(str(free))
    assert embedded._choose_port(state, embedded.PREFERRED_REDIS_PORT, what="Redis") == free


def test_the_port_of_a_checkout_whose_server_is_stopped_is_not_taken_by_another(tmp_path, capsys):
    """A checkout's Redis stopped for a moment gets its port back: a second checkout starting
    meanwhile finds the port free but takes the next one, as the processes of the first (under
    `make run`) still connect to the port they were given."""
    first, second = tmp_path / "first" / "redis.port", tmp_path / "second" / "redis.port"
    first.parent.mkdir(), second.parent.mkdir()
    port = _free_port()
    assert embedded._choose_port(first, port, what="Redis") == port
    chosen = embedded._choose_port(second, port, what="Redis")
    assert chosen != port
    # The first's own restart keeps its port; it is nobody's once its .local/ is deleted.
    assert embedded._choose_port(first, port, what="Redis") == port
    assert "remembered by another checkout" not in capsys.readouterr().out
    first.unlink()
    second.write_text(str(port))
    assert embedded._choose_port(second, chosen, what="Redis") == port


def _embedded_call(local_dir, code: str) -> str:
    """`code` run against devserver.embedded in a process of its own, with its servers under `local_dir`
    (as in a checkout where no URL is set)."""
    env = {name: value for name, value in os.environ.items() if name not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run([sys.executable, "-c", f"from devserver import embedded; {code}"], cwd=BASE_DIR,
                          env={**env, "LOCAL_DIR": str(local_dir)}, capture_output=True, text=True, check=True,
                          timeout=120).stdout.strip()


@pytest.mark.integration  # starts a real Redis
def test_the_embedded_redis_starts_with_a_generated_password_and_refuses_commands_without_it(tmp_path):
    import redis

    def embedded_call(code: str) -> str:
        return _embedded_call(tmp_path, code)

    url = urlsplit(embedded_call("embedded.redis_start(); print(embedded.redis_url())"))
    try:
        assert url.password and (tmp_path / "redis.password").stat().st_mode & 0o077 == 0
        assert url.password not in _every_command_line()  # `ps` shows no password
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            redis.Redis(host=url.hostname, port=url.port, socket_timeout=2).ping()
        assert redis.Redis(host=url.hostname, port=url.port, password=url.password, socket_timeout=2).ping()
    finally:
        embedded_call("embedded.redis_stop()")


@pytest.mark.integration  # starts two real Redis servers
def test_two_checkouts_started_at_the_same_moment_take_different_ports(tmp_path):
    """Each start holds the host's ports lock from choosing a port until its server listens: the
    second sees the first's port taken, instead of both finding it free and one dying."""
    checkouts = [tmp_path / "a", tmp_path / "b"]
    env = {name: value for name, value in os.environ.items() if name != "REDIS_URL"}
    env["DATABASE_URL"] = "postgres://unused@127.0.0.1:9/none"  # Redis alone: PostgreSQL is not started
    starts = [subprocess.Popen([sys.executable, "-m", "devserver.embedded", "start"], cwd=BASE_DIR,
                               env={**env, "LOCAL_DIR": str(local)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for local in checkouts]
    try:
        for start in starts:
            out, err = start.communicate(timeout=120)
            assert start.returncode == 0, err
        ports = [int((local / "redis.port").read_text()) for local in checkouts]
        assert ports[0] != ports[1]
        assert all(_embedded_call(local, "print(embedded.redis_running())") == "True" for local in checkouts)
    finally:
        for local in checkouts:
            _embedded_call(local, "embedded.redis_stop()")


def _every_command_line() -> str:
    import os
    from pathlib import Path

    lines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"))
        except OSError:
            continue  # ended meanwhile
    return " ".join(lines)


def _looser_than_owner_only(local_dir: Path) -> list[str]:
    """What under `local_dir` another account could read, write or list (under root the PostgreSQL
    user's group may pass through `local_dir` itself, and do nothing else)."""
    loose = []
    for path in [local_dir, *local_dir.rglob("*")]:
        if path.is_symlink():
            continue
        allowed = 0o010 if path == local_dir and os.geteuid() == 0 else 0
        if path.lstat().st_mode & 0o077 & ~allowed:
            loose.append(f"{path}: {oct(path.lstat().st_mode & 0o777)}")
    return loose


def _refused(**params) -> bool:
    try:
        psycopg.connect(**params, connect_timeout=5).close()
    except psycopg.OperationalError:
        return True
    return False


@pytest.mark.integration  # starts a real PostgreSQL and Redis
def test_the_embedded_postgres_wants_its_password_from_everyone_and_an_old_trusting_one_is_locked_down(tmp_path):
    local = tmp_path / ".local"
    url = urlsplit(_embedded_call(local, "print(embedded.ensure_started().database_url)"))
    try:
        superuser_password = (local / "postgres.password").read_text().strip()
        server = {"host": url.hostname, "port": url.port, "user": "postgres", "dbname": "postgres"}
        assert url.username == "app" and url.password and url.password not in _every_command_line()
        assert superuser_password not in _every_command_line()
        assert (local / "app.password").read_text().strip() == url.password
        assert _refused(**server) and _refused(**server, password="postgres")
        with psycopg.connect(**server, password=superuser_password, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (note text)")
            conn.execute("INSERT INTO kept VALUES ('still here')")
        # As an earlier version left it: `trust` for every local account, no password file.
        hba = local / "pgdata" / "pg_hba.conf"
        hba.write_text("host all all 127.0.0.1/32 trust\n")
        (local / "postgres.password").unlink()
        (local / "services.env").chmod(0o644)
        with psycopg.connect(**server, password=superuser_password, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
        assert not _refused(**server)  # anyone may log in now, as before the lock-down

        said = _embedded_call(local, "embedded.ensure_started()")
        assert "lets any local account in; restarting it with a password" in said
        assert "could be read by other accounts" in said
        again = (local / "postgres.password").read_text().strip()
        assert again and again != superuser_password
        assert _refused(**server) and _refused(**server, password=superuser_password)
        with psycopg.connect(**server, password=again) as conn:
            assert conn.execute("SELECT note FROM kept").fetchone() == ("still here",)
        assert _looser_than_owner_only(local) == []
        if os.geteuid() == 0:
            _assert_another_account_reads_nothing(local, port=url.port)
    finally:
        _embedded_call(local, "embedded.stop()")


@pytest.mark.integration  # starts a real PostgreSQL
def test_the_service_connects_as_a_role_that_is_no_superuser_and_a_cluster_made_before_is_handed_over(tmp_path):
    """The app's role owns its database and what is in it, may not create roles, has a connection
    limit below the server's, and has pgvector where it could not create it itself. Tables an
    earlier version created as the superuser become the role's on the next start."""
    local = tmp_path / ".local"
    url = urlsplit(_embedded_call(local, "print(embedded.ensure_started().database_url)"))
    try:
        superuser = {"host": url.hostname, "port": url.port, "user": "postgres", "dbname": "app",
                     "password": (local / "postgres.password").read_text().strip(), "autocommit": True}
        with psycopg.connect(**superuser) as conn:  # as an earlier version made its tables
            conn.execute("CREATE TABLE made_before (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY)")
        _embedded_call(local, "embedded.ensure_started()")
        app = {"host": url.hostname, "port": url.port, "user": url.username, "password": url.password,
               "dbname": "app", "autocommit": True}
        with psycopg.connect(**app) as conn:
            super_, createrole, limit = conn.execute(
                "SELECT rolsuper, rolcreaterole, rolconnlimit FROM pg_roles WHERE rolname = current_user").fetchone()
            assert (super_, createrole) == (False, False)
            assert 0 < limit < int(conn.execute("SHOW max_connections").fetchone()[0])
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE ROLE another LOGIN")
            assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchone()
            conn.execute("INSERT INTO made_before DEFAULT VALUES")  # its own now, sequence and all
            conn.execute("DROP TABLE made_before")
            conn.execute("CREATE DATABASE made_by_the_role")  # the test suite's databases
        with psycopg.connect(**{**app, "dbname": "made_by_the_role"}) as conn:
            assert conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchone()
        with psycopg.connect(**app) as conn:
            conn.execute("DROP DATABASE made_by_the_role")
    finally:
        _embedded_call(local, "embedded.stop()")


# Run as `nobody` by the system's Python: PostgreSQL's first answer to a login without a password.
# 'R' with code 10 is a demand for SCRAM; code 0 would be "you are in" (trust).
_FIRST_ANSWER = """
import socket, struct, sys
params = b"user\\0postgres\\0database\\0postgres\\0\\0"
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as conn:
    conn.sendall(struct.pack("!II", 8 + len(params), 196608) + params)
    kind, _, code = struct.unpack("!cII", conn.recv(9))
print(kind.decode(), code)
"""


def _assert_another_account_reads_nothing(local: Path, *, port: int) -> None:
    """As `nobody`, with its own group alone: every file under .local/ is out of reach, and the
    database asks it for a password."""
    nobody = pwd.getpwnam("nobody")
    as_nobody = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": [], "capture_output": True}
    answer = subprocess.run(["/usr/bin/python3", "-c", _FIRST_ANSWER, str(port)], text=True, **as_nobody)
    assert answer.stdout.split() == ["R", "10"], (answer.stdout, answer.stderr)
    readable = []
    for path in [local, *local.rglob("*")]:
        if path.is_symlink():
            continue
        command = ["ls", str(path)] if path.is_dir() else ["head", "-c", "1", str(path)]
        if subprocess.run(command, **as_nobody).returncode == 0:
            readable.append(str(path))
    assert readable == []
