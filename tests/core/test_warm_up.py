"""Warm-ups: each runs once before a process serves; one that fails leaves the process serving."""

import logging

from core import warm_up


def test_web_warm_ups_run_once_each_from_gunicorns_hook_and_a_failing_one_is_logged(monkeypatch, settings, caplog):
    from project import gunicorn_conf

    calls = []

    def model_load():
        calls.append("model")

    def broken():
        raise RuntimeError("no such model")

    monkeypatch.setattr(warm_up, "_web_warm_ups", [])
    for registered in (model_load, broken, model_load):
        warm_up.web_warm_up_register(registered)
    settings.WORKER_WARM_UP = True
    with caplog.at_level(logging.INFO, logger="core.warm_up"):
        gunicorn_conf.post_worker_init(worker=None)
    assert calls == ["model"]
    assert [(r.message, r.warm_up) for r in caplog.records] == [("web process warmed up", "model_load"),
                                                              ("warm-up failed", "broken")]

    settings.WORKER_WARM_UP = False
    gunicorn_conf.post_worker_init(worker=None)
    assert calls == ["model"]
