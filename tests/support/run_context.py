"""A run context for calling a body service directly, without a worker or the lifecycle.

It implements jobs.context.RunContext, the protocol a body is written against (progress, log, steps, checkpoints, fan-out,
commit, slices) and records what the body did with it. Writes a body hands to `checkpoint`,
`fan_out` or `commit` run for real, each in a transaction, so the test sees the body's effects in
PostgreSQL. A test can cancel the run at a given progress report, or end the slice at once."""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from django.db import transaction

from jobs.errors import RunCancelled


class Yielded(Exception):
    """The body handed its worker back (ctx.yield_turn) after a slice."""


@dataclass
class FakeRunContext:
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempt: int = 1
    max_attempts: int = 1
    correlation_id: str = ""
    args: dict = field(default_factory=dict)
    checkpoints: dict = field(default_factory=dict)
    worker: str = "test:0"
    started: float = field(default_factory=time.monotonic)
    # Raise RunCancelled at this progress report (1-based), as a cancel arriving mid-run would.
    cancel_at_report: int | None = None
    # slice_over answers True: the body's first chance to yield takes it.
    slice_ends: bool = False
    reports: list[tuple[int, int | None, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    steps_computed: list[str] = field(default_factory=list)
    outcome: str | None = None
    result: Any = None
    yielded: str | None = None
    # The progress each checkpoint said it stands for.
    kept_progress: list[int] = field(default_factory=list)
    # What the body streamed (ctx.stream), and the callback of a body watching for a cancel now.
    streamed: list[tuple[str, dict]] = field(default_factory=list)
    on_cancel: Callable[[], None] | None = None

    def progress(self, current: int, total: int | None = None, *, step: str = "", message: str = "") -> None:
        self.reports.append((current, total, step))
        if self.cancel_at_report is not None and len(self.reports) >= self.cancel_at_report:
            raise RunCancelled(self.id)

    def log(self, message: str, *, level: str = "info") -> None:
        self.lines.append(message)

    def stream(self, event: str, data: dict) -> None:
        self.streamed.append((event, data))

    @contextmanager
    def watching_cancel(self, on_cancel: Callable[[], None]) -> Iterator[None]:
        self.on_cancel = on_cancel
        try:
            yield
        finally:
            self.on_cancel = None

    def stop(self, write: Callable[[], Any]) -> Any:
        with transaction.atomic():
            self.result = write()
        self.outcome = "REVOKED"
        return self.result

    def step(self, name: str, compute: Callable[[], Any]) -> Any:
        if name not in self.checkpoints:
            self.steps_computed.append(name)
            self.checkpoint({name: compute()})
        return self.checkpoints[name]

    def checkpoint(self, values: dict[str, Any], *, write: Callable[[], Any] | None = None,
                   current: int | None = None) -> None:
        if current is not None:
            self.kept_progress.append(current)
        with transaction.atomic():
            if write is not None:
                write()
        self.checkpoints.update(values)

    def slice_over(self, seconds: float) -> bool:
        return self.slice_ends

    def yield_turn(self, *, reason: str) -> None:
        self.yielded = reason
        raise Yielded(reason)

    @property
    def awaiting_children(self) -> bool:
        return self.outcome == "AWAITING_CHILDREN"

    def fan_out(self, create_children: Callable[[], int], *, step: str, message: str) -> int:
        with transaction.atomic():
            total = create_children()
        if total:
            self.outcome = "AWAITING_CHILDREN"
        return total

    def commit(self, write: Callable[[], Any]) -> Any:
        with transaction.atomic():
            self.result = write()
        self.outcome = "SUCCESS"
        return self.result


def document_ready(*, owner, text: bytes, name: str = "notes.txt"):
    """A document uploaded and ingested in this process (the ingestion's body called with a fake
    context): searchable at once, with no worker and no broker message consumed."""
    from documents.models import Document
    from documents.services import document_ingest, document_upload
    from tests.support.files import upload

    document, _ = document_upload(owner=owner, upload=upload(name, text))
    document_ingest(document_id=str(document.id), ctx=FakeRunContext(id=str(document.run_id)))
    return Document.objects.get(id=document.id)
