"""Correlation ids: one per request, carried into every task it enqueues and onto its runs."""

from __future__ import annotations

import contextvars
import logging
import uuid

# The Celery message header that carries it. Not "correlation_id": Celery already uses that name for the task id.
CORRELATION_HEADER = "request_id"

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def correlation_id_get() -> str | None:
    return correlation_id_var.get()


def correlation_id_new() -> str:
    return uuid.uuid4().hex


class CorrelationIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            record.correlation_id = correlation_id_var.get()
        return True
