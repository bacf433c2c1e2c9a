"""The project's settings with django-q2 beside Celery, for bench/task_overhead.py alone: django-q2 is
a peer measured against, installed by `make bench` (bench/requirements.txt), never a dependency."""

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS, REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "django_q"]
# django-q2 as its documentation sets it up on Redis, with as many workers as the Celery worker's
# processes; every result kept (save_limit 0), so that the bench can count them, like the results
# Celery and tracked runs keep; everything else at its defaults.
Q_CLUSTER = {"name": "bench", "workers": 2, "redis": REDIS_URL, "timeout": 60, "retry": 120, "catch_up": False,
             "save_limit": 0}
