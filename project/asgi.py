"""The web process's application (gunicorn's uvicorn worker, project/gunicorn_conf.py): Server-Sent
Events served on the event loop (core.streams), every other request by Django's WSGI app in a
pool of WEB_THREADS request threads (core.request_threads), as gunicorn's gthread worker would."""

import os

from django.core.wsgi import get_wsgi_application

from core.configuration import environment

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

# The number of request threads is the same setting gunicorn's gthread worker read.
REQUEST_THREADS = int(environment().get("WEB_THREADS", "4"))

_wsgi = get_wsgi_application()

from core.request_threads import RequestThreads  # noqa: E402  (after Django is set up: they read settings)
from core.streams import streams_beside  # noqa: E402

_django = RequestThreads(_wsgi, threads=REQUEST_THREADS)

application = streams_beside(_django)
# What gunicorn's post_worker_init warms up, thread by thread.
application.request_threads = _django.executor
application.request_thread_count = REQUEST_THREADS
