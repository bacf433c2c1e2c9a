"""Where the embedded servers are found: read only, so settings can ask before anything started."""


def test_urls_are_computed_without_writing_anything(tmp_path, monkeypatch):
    from core import local_services

    monkeypatch.setattr(local_services, "PG_PORT_FILE", tmp_path / "missing" / "pg.port")
    monkeypatch.setattr(local_services, "REDIS_PORT_FILE", tmp_path / "missing" / "redis.port")
    assert local_services.postgres_url().endswith(f":{local_services.PREFERRED_PG_PORT}/app")
    assert local_services.redis_url().endswith(f":{local_services.PREFERRED_REDIS_PORT}/0")
    assert not (tmp_path / "missing").exists()
