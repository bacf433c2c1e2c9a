"""Where the embedded servers are found: read only, so settings can ask before anything started."""


def test_urls_are_computed_without_writing_anything(tmp_path, monkeypatch):
    from core import local_services

    monkeypatch.setattr(local_services, "PG_PORT_FILE", tmp_path / "missing" / "pg.port")
    monkeypatch.setattr(local_services, "REDIS_PORT_FILE", tmp_path / "missing" / "redis.port")
    assert local_services.postgres_url().endswith(f":{local_services.PREFERRED_PG_PORT}/app")
    assert local_services.redis_url().endswith(f":{local_services.PREFERRED_REDIS_PORT}/0")
    assert not (tmp_path / "missing").exists()


def test_a_command_that_needs_the_servers_is_refused_until_they_were_started(tmp_path, monkeypatch):
    from core import local_services

    monkeypatch.setattr(local_services, "SERVICES_ENV", tmp_path / "services.env")
    refusal = local_services.unstarted_refusal(argv=["manage.py", "health"], environ={})
    assert "have not been started" in refusal and "make run" in refusal and "DATABASE_URL and REDIS_URL" in refusal
    assert local_services.unstarted_refusal(argv=["manage.py", "check"], environ={}) is None
    assert local_services.unstarted_refusal(argv=["manage.py", "--help"], environ={}) is None
    given = {"DATABASE_URL": "postgres://db.example/app", "REDIS_URL": "redis://cache.example/0"}
    assert local_services.unstarted_refusal(argv=["manage.py", "shell"], environ=given) is None
    assert "REDIS_URL is not set" in local_services.unstarted_refusal(
        argv=["manage.py", "shell"], environ={"DATABASE_URL": given["DATABASE_URL"]})
    (tmp_path / "services.env").write_text("DATABASE_URL=postgres://127.0.0.1:54330/app\nREDIS_URL=redis://127.0.0.1:63800/0\n")
    assert local_services.unstarted_refusal(argv=["manage.py", "shell"], environ={}) is None
