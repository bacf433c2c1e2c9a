"""gunicorn's web worker (project/gunicorn_conf.py): uvicorn's, stopping within STOP_STREAMS_SECONDS.

An open event stream never ends by itself, so a stopping process would wait for it until gunicorn's
own timeout and then be killed; instead it lets requests finish for a few seconds, then ends its
streams, whose clients reconnect (to another process) with Last-Event-ID and miss nothing."""

from uvicorn_worker import UvicornWorker

STOP_STREAMS_SECONDS = 5


class WebWorker(UvicornWorker):
    # No Server header: what serves the API is nobody's business but ours.
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "timeout_graceful_shutdown": STOP_STREAMS_SECONDS,
                     "server_header": False}
