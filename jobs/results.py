"""Celery's result backend, answering for a run from the run itself.

Outcomes are written by the lifecycle into django-celery-results' table with the run's end (one
statement), so a finished run reads as any Celery result does, with Celery's extended fields
(name, args, kwargs, worker, queue, retries: CELERY_RESULT_EXTENDED). Before that the table has no
row, and Celery would say PENDING of a run that is working: this backend answers then from the
run, in Celery's state names (STARTED, PROGRESS, RETRY), with its progress as `.info`. So
`AsyncResult(run_id)` from any code behaves as a Celery user expects, and `.get(timeout=…)` waits
for the run's end.
"""

from __future__ import annotations

import uuid

import django
from celery import states
from celery.result import AsyncResult
from django.apps import apps

if not apps.ready:
    # Loaded by the `celery` command's own subcommands (`call`, `result`, `inspect`), which set up
    # no Django before they need the result backend; the backend reads Django's models.
    django.setup()

from celery.backends.base import get_current_task  # noqa: E402
from celery.utils.saferepr import saferepr  # noqa: E402
from django_celery_results.backends.database import DatabaseBackend  # noqa: E402


class RunBackend(DatabaseBackend):
    """Also a plain Celery task's results carry Celery's extended fields as Celery defines them:
    django-celery-results keeps the reprs of its args (`.kwargs` came back as the text
    "{'x': 2}") and no name, queue or retries. The values themselves are kept instead, unless the
    caller gave reprs of its own (`argsrepr=`, `kwargsrepr=`: what it chose to show, perhaps to
    hide a secret), which are kept as they are."""

    def _get_extended_properties(self, request, traceback):
        properties = super()._get_extended_properties(request, traceback)
        if request is None or not self.app.conf.find_value_for_key("extended", "result"):
            return properties
        for shown, value, key in (("argsrepr", "args", "task_args"), ("kwargsrepr", "kwargs", "task_kwargs")):
            values = getattr(request, value, None)
            given = getattr(request, shown, None)
            maxsize = getattr(self.app.amqp, f"{shown}_maxsize")
            if values is not None and (given is None or given == saferepr(values, maxsize)):
                try:
                    properties[key] = self.encode_content(list(values) if value == "args" else dict(values))[2]
                except Exception:  # not encodable as the result serializer: the repr stays
                    pass
        return properties

    def _get_meta_from_request(self, request=None):
        meta = dict(super()._get_meta_from_request(request) or {})
        request = request or getattr(get_current_task(), "request", None)
        if request is not None and self.app.conf.find_value_for_key("extended", "result"):
            meta.setdefault("name", getattr(request, "task", None))
            meta.setdefault("queue", (getattr(request, "delivery_info", None) or {}).get("routing_key"))
            meta.setdefault("retries", getattr(request, "retries", 0))
        return meta

    def _get_task_meta_for(self, task_id):
        meta = super()._get_task_meta_for(task_id)
        if meta.get("status") in states.READY_STATES:
            return meta
        from jobs.models import JobRun

        try:
            run = JobRun.objects.filter(id=uuid.UUID(str(task_id))).first()
        except ValueError:  # not a run's id: Celery's own answer for it
            return meta
        if run is None or run.is_finished:  # an end being written this instant: its row is next
            return meta
        state = run.celery_state
        return {**meta, "status": state, "result": None if state == states.PENDING else run.progress_info,
                "name": run.kind, "args": [], "kwargs": run.args, "queue": run.queue, "worker": run.worker or None,
                "retries": max(run.attempts - 1, 0)}


class RunResult(AsyncResult):
    """A tracked task's AsyncResult: `.revoke()` is the durable cancel (the run's flag first, then
    Celery's revoke), not a broadcast that a worker which is down would never hear. As Celery's,
    revoking a run that has ended does nothing."""

    def revoke(self, connection=None, terminate=False, signal=None, wait=False, timeout=None):
        from jobs.errors import JobsError
        from jobs.models import JobRun
        from jobs.services.canvas import runs_following
        from jobs.services.steering import run_cancel

        run = JobRun.objects.filter(id=self.id).first()
        if run is None:  # a chain's later link or a chord's body, not recorded yet: what it waits on
            targets = runs_following(task_id=str(self.id))
        else:
            targets = [] if run.is_finished else [run]
        for target in targets:
            try:
                run_cancel(run=target)
            except JobsError:
                pass  # it ended meanwhile
