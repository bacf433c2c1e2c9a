"""gunicorn settings: JSON log lines like the rest of the service, with the request id on each access line."""

from core.configuration import environment

_environment = environment()
bind = f"{_environment.get('HOST', '127.0.0.1')}:{_environment.get('PORT', '8000')}"
workers = int(_environment.get("WEB_CONCURRENCY", "2"))
# Threads per worker (gthread): a slow request (a search, a stats page) holds one thread, not the
# whole process, so one user's slow calls do not queue everyone else's behind them.
threads = int(_environment.get("WEB_THREADS", "4"))
timeout = 60
accesslog = "-"
# The response's X-Request-ID (set by RequestIdMiddleware) ties an access line to the app's and workers' lines.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'


def post_worker_init(worker):
    # Django is set up by now, and the worker takes no request before this returns: the first
    # search after start-up is as fast as the hundredth (core.warm_up). A gthread worker's request
    # threads already exist as its pool (`tpool`); a sync worker serves from this thread.
    from core.warm_up import web_warm_up_run

    # The pool's size is the worker's own setting (a --threads on the command line overrides this file's).
    pool_size = getattr(getattr(worker, "cfg", None), "threads", threads)
    web_warm_up_run(request_threads=getattr(worker, "tpool", None), thread_count=pool_size)

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
    },
}
