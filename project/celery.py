"""The Celery app and the signals that carry context into tasks.

It names no app: each kind declares its queue (jobs.runner.tracked_task), Celery creates a queue
the first time it is used, and a worker is told its queues by `-Q` (processes.workers)."""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")

app.autodiscover_tasks()


@signals.setup_logging.connect
def _use_django_logging(**kwargs):
    # Worker log lines go through Django's LOGGING (JSON on stderr) rather than Celery's own format.
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@signals.celeryd_init.connect
@signals.beat_init.connect
def _patient_broker_for_daemons(**kwargs):
    # A request gives up on the broker within REDIS_TIMEOUT_SECONDS, because its run waits in
    # PostgreSQL for the watchdog. A worker or beat has no request waiting on it: a Redis that is
    # slow for a moment should not cost it its connection (and a redelivery of what it holds), so
    # its connections, made after this signal, wait WORKER_BROKER_TIMEOUT_SECONDS.
    from django.conf import settings

    patience = settings.WORKER_BROKER_TIMEOUT_SECONDS
    app.conf.broker_transport_options = {**app.conf.broker_transport_options, "socket_timeout": patience,
                                         "socket_connect_timeout": patience}


@signals.celeryd_init.connect
def _no_lock_outlives_a_paused_worker(**kwargs):
    # A worker paused or cut off inside a transaction (a checkpoint's writes hold the run's row)
    # would keep that row locked for as long as it sleeps, and the takeover of its run would wait
    # on it. The server ends such a transaction once it has been idle as long as a heartbeat may be
    # missed (never mid-statement: no body waits on anything but the database inside one), so by
    # the time the run counts as stale its row is free; the worker, on waking, finds its connection
    # gone and its lease taken, and writes nothing. Set before the pool forks and connects.
    from django.conf import settings
    from django.db import connections

    idle_ms = int(settings.RUN_HEARTBEAT_TIMEOUT_SECONDS * 1000)
    for alias in connections:
        options = connections[alias].settings_dict.setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c idle_in_transaction_session_timeout={idle_ms}".strip()


@signals.celeryd_init.connect
@signals.beat_init.connect
@signals.worker_process_init.connect
def _no_query_log(**kwargs):
    # While DEBUG is on (make run's development settings) Django keeps each connection's last 9,000
    # statements: in a long task that is hundreds of megabytes of SQL text (a cleanup of 590,000
    # runs grew its worker by 211 MB). Workers and beat keep none, whatever DEBUG says; their JSON
    # log says what they did. Connections made before this (Django's set-up) drop theirs too.
    from collections import deque

    from django.db import connections
    from django.db.backends.base.base import BaseDatabaseWrapper

    BaseDatabaseWrapper.queries_limit = 0
    for conn in connections.all(initialized_only=True):
        conn.queries_log = deque(maxlen=0)


@signals.before_task_publish.connect
def _attach_correlation_id(headers=None, **kwargs):
    from core.logging import CORRELATION_HEADER, correlation_id_get

    if headers is not None and not headers.get(CORRELATION_HEADER):
        correlation_id = correlation_id_get()
        if correlation_id:
            headers[CORRELATION_HEADER] = correlation_id


# Connections: Celery's Django fix-up already closes unusable or expired ones before and after
# every task; a connection the database dropped meanwhile fails the claim, which redelivers.

@signals.task_prerun.connect
def _task_prerun(task=None, **kwargs):
    from core.logging import CORRELATION_HEADER, correlation_id_var

    correlation_id = getattr(task.request, CORRELATION_HEADER, None) if task else None
    correlation_id_var.set(correlation_id)


@signals.task_postrun.connect
def _task_postrun(**kwargs):
    from core.logging import correlation_id_var

    correlation_id_var.set(None)


@signals.worker_process_init.connect
def _no_health_check_per_task(**kwargs):
    # With health checks on, every task would begin with a `SELECT 1`, because the fix-up above
    # resets them before each task. A worker needs none: a dropped connection fails the claim,
    # the message is redelivered a second later, and the fix-up replaces the connection.
    from django.db import connections

    for alias in connections:
        connections[alias].settings_dict["CONN_HEALTH_CHECKS"] = False
