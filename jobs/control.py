"""Celery's `revoke` command, made the durable cancel for tracked runs.

`app.control.revoke(id)`, `celery control revoke <id>` and Flower's revoke and terminate all
broadcast Celery's `revoke` to the workers, which keep the id in memory: a worker restarted forgets
it, a message not yet delivered then runs, and nothing is recorded until a worker acts. Each worker
answers the broadcast here first by recording the cancel in the database (as the API's cancel
does: a waiting run ends REVOKED at once, a running one stops at its next report with nothing
written), then does what Celery does. Every worker hears the broadcast; the first to record it
wins and the others find it recorded. Loaded by the workers' consumer (jobs.consumer).
"""

from __future__ import annotations

import logging

from celery.utils.functional import maybe_list
from celery.worker import control
from django.db import DatabaseError, close_old_connections

from jobs.services.steering import runs_cancel_requested_through_celery

logger = logging.getLogger(__name__)

_celery_revoke = control.Panel.data["revoke"]


@control.control_command(variadic="task_id", signature="[id1 [id2 [... [idN]]]]")
def revoke(state, task_id, terminate=False, signal=None, **kwargs):
    """Revoke a task by id or list of ids: tracked runs are cancelled durably first."""
    for attempt in range(2):  # the main process rarely uses its connection; it may have gone stale
        try:
            runs_cancel_requested_through_celery(run_ids=maybe_list(task_id) or [])
            break
        except DatabaseError:
            close_old_connections()
            if attempt:
                logger.warning("revoke not recorded; the database is unreachable", extra={"task_id": task_id})
    return _celery_revoke(state, task_id, terminate=terminate, signal=signal, **kwargs)
