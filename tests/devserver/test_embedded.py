"""The embedded servers' bookkeeping: remembered ports, read-only URLs, the Redis password."""

import socket

import pytest

from devserver import embedded


def test_a_remembered_port_taken_by_another_program_is_replaced_and_said(tmp_path, capsys):
    state = tmp_path / "pg.port"
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        state.write_text(str(taken))
        chosen = embedded._choose_port(state, embedded.PREFERRED_PG_PORT, ours=False, what="PostgreSQL")
    assert chosen != taken
    assert state.read_text() == str(chosen)
    assert f"port {taken} is taken by another program; using {chosen}" in capsys.readouterr().out


def test_a_free_remembered_port_is_kept(tmp_path):
    state = tmp_path / "redis.port"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    state.write_text(str(free))
    assert embedded._choose_port(state, embedded.PREFERRED_REDIS_PORT, ours=False, what="Redis") == free


@pytest.mark.integration  # starts a real Redis
def test_the_embedded_redis_starts_with_a_generated_password_and_refuses_commands_without_it(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    from urllib.parse import urlsplit

    import redis

    env = {**os.environ, "LOCAL_DIR": str(tmp_path)}
    base = Path(__file__).resolve().parents[2]

    def embedded_call(code: str) -> str:
        return subprocess.run([sys.executable, "-c", f"from devserver import embedded; {code}"], cwd=base, env=env,
                              capture_output=True, text=True, check=True, timeout=60).stdout.strip()

    url = urlsplit(embedded_call("embedded.redis_start(); print(embedded.redis_url())"))
    try:
        assert url.password and (tmp_path / "redis.password").stat().st_mode & 0o077 == 0
        assert url.password not in _every_command_line()  # `ps` shows no password
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            redis.Redis(host=url.hostname, port=url.port, socket_timeout=2).ping()
        assert redis.Redis(host=url.hostname, port=url.port, password=url.password, socket_timeout=2).ping()
    finally:
        embedded_call("embedded.redis_stop()")


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
