"""The embedded servers' bookkeeping: remembered ports, read-only URLs."""

import socket

from project import embedded


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


def test_urls_are_computed_without_writing_anything(tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "PG_PORT_FILE", tmp_path / "missing" / "pg.port")
    monkeypatch.setattr(embedded, "REDIS_PORT_FILE", tmp_path / "missing" / "redis.port")
    assert embedded.postgres_url().endswith(f":{embedded.PREFERRED_PG_PORT}/app")
    assert embedded.redis_url().endswith(f":{embedded.PREFERRED_REDIS_PORT}/0")
    assert not (tmp_path / "missing").exists()
