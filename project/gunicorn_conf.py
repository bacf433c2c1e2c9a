"""gunicorn settings: uvicorn workers serving project.asgi (streams on the event loop, the rest in
request threads), JSON log lines like the rest of the service, with the request id on each access line."""

from core.configuration import environment

_environment = environment()
bind = f"{_environment.get('HOST', '127.0.0.1')}:{_environment.get('PORT', '8000')}"
workers = int(_environment.get("WEB_CONCURRENCY", "2"))
# An event loop per worker holds the open streams (core.streams); every other request runs in one of
# its WEB_THREADS request threads (project/asgi.py): a slow request (a search, a stats page) holds
# one thread, not the whole process, so one user's slow calls do not queue everyone else's behind them.
worker_class = "project.web_worker.WebWorker"
threads = int(_environment.get("WEB_THREADS", "4"))
timeout = 60
# The access lines are core.streams' (logger "web.access"), with each response's X-Request-ID (set
# by RequestIdMiddleware), which ties an access line to the app's and workers' lines; uvicorn's own
# would repeat them without it.
accesslog = None


def post_worker_init(worker):
    # Django is set up by now, and the worker takes no request before this returns: the first
    # search after start-up is as fast as the hundredth (core.warm_up). project.asgi's request
    # threads are its pool (`request_threads`), as a gthread worker's are its `tpool`; a sync
    # worker serves from this thread.
    from core.warm_up import web_warm_up_run

    app = getattr(worker, "wsgi", None)
    pool = getattr(app, "request_threads", None) or getattr(worker, "tpool", None)
    pool_size = getattr(app, "request_thread_count", None) or getattr(getattr(worker, "cfg", None), "threads", threads)
    web_warm_up_run(request_threads=pool, thread_count=pool_size)

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "web.access": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
