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
    monkeypatch.setattr(warm_up, "_web_thread_warm_ups", [])
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


def test_per_thread_warm_ups_run_once_in_each_request_thread_of_a_gthread_worker(monkeypatch, settings):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from project import gunicorn_conf

    threads_warmed = []
    monkeypatch.setattr(warm_up, "_web_warm_ups", [])
    monkeypatch.setattr(warm_up, "_web_thread_warm_ups", [])
    warm_up.web_warm_up_register(lambda: threads_warmed.append(threading.get_ident()), per_thread=True)
    settings.WORKER_WARM_UP = True

    class GthreadWorker:  # what post_worker_init is handed: gunicorn's worker, its request threads made
        tpool = ThreadPoolExecutor(max_workers=gunicorn_conf.threads)

    gunicorn_conf.post_worker_init(worker=GthreadWorker())
    assert len(threads_warmed) == len(set(threads_warmed)) == gunicorn_conf.threads
    served_by = {GthreadWorker.tpool.submit(threading.get_ident).result() for _ in range(20)}
    assert served_by <= set(threads_warmed)  # a request lands on a thread that warmed up
    GthreadWorker.tpool.shutdown()

    threads_warmed.clear()
    gunicorn_conf.post_worker_init(worker=object())  # a sync worker serves from the thread that warms up
    assert threads_warmed == [threading.get_ident()]


def test_a_request_threads_search_warm_up_opens_its_connection(transactional_db):
    import threading

    from django.db import connection

    from documents.selectors import search_thread_warm_up

    opened = []

    def in_a_new_thread():
        search_thread_warm_up()
        opened.append(connection.connection is not None)
        connection.close()

    thread = threading.Thread(target=in_a_new_thread)
    thread.start()
    thread.join()
    assert opened == [True]
