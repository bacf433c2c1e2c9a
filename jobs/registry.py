"""Kinds of tracked work: each names its Celery task, queue, params schema, retry policy and hooks.

Kinds are registered by `jobs.runner.tracked_task`, the one way the product defines background
work, so every execution is a JobRun that can be watched, cancelled and retried.

Hooks all have one signature, `hook(run: JobRun, **args)`, with the run's own args:
`on_final_failure` (the run ended FAILURE for good), `on_timeout` (an attempt hit its soft time
limit, before the retry policy decides) and `on_revoked` (the run ended REVOKED). Each runs in the
transaction of the transition that calls it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

import jsonschema
from django.conf import settings

from core.errors import DomainError, PermanentError
from jobs.constants import MAINTENANCE_QUEUE
from jobs.errors import JobsError


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures retry and after how long.

    Either a fixed list of delays (`delays=(5, 15, 30)`: three retries) or exponential
    backoff (`retries=4, backoff=2.0, backoff_max=300`) with full jitter.
    """

    delays: tuple[float, ...] | None = None
    retries: int = 0
    backoff: float = 2.0
    backoff_max: float = 300.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    never_retry: tuple[type[BaseException], ...] = (PermanentError,)
    retry_after_cap: float = 300.0

    @property
    def max_attempts(self) -> int:
        return 1 + (len(self.delays) if self.delays is not None else self.retries)

    def should_retry(self, exc: BaseException, *, attempt: int) -> bool:
        if attempt >= self.max_attempts or isinstance(exc, self.never_retry):
            return False
        if isinstance(exc, DomainError) and not exc.transient:  # a refusal repeats itself
            return False
        return isinstance(exc, self.retry_on)

    def delay_for(self, exc: BaseException, *, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if self.delays is not None:
            planned = float(self.delays[attempt - 1])
        else:
            ceiling = min(self.backoff_max, self.backoff ** attempt)
            planned = random.uniform(0, ceiling) if self.jitter else ceiling
        hint = getattr(exc, "retry_after", None)
        if hint is not None:
            # A server's Retry-After wins over our plan, but never beyond the cap or the broker's limit.
            planned = max(planned, min(float(hint), self.retry_after_cap))
        return min(planned, float(settings.MAX_RETRY_COUNTDOWN))


NO_RETRY = RetryPolicy(retries=0)


def default_retry_policy() -> RetryPolicy:
    """The policy of a kind that declares none, in Celery's words: CELERY_TASK_MAX_RETRIES retries
    (0 by default: one attempt) after CELERY_TASK_DEFAULT_RETRY_DELAY seconds each."""
    retries = settings.CELERY_TASK_MAX_RETRIES
    return RetryPolicy(delays=(float(settings.CELERY_TASK_DEFAULT_RETRY_DELAY),) * retries) if retries else NO_RETRY


@dataclass(frozen=True)
class JobKind:
    kind: str
    queue: str
    description: str
    body: Callable[..., Any]
    params_schema: dict = field(default_factory=lambda: {"type": "object", "additionalProperties": False})
    retry: RetryPolicy = NO_RETRY
    soft_time_limit: int | None = None
    time_limit: int | None = None
    on_final_failure: Callable[..., None] | None = None
    on_timeout: Callable[..., None] | None = None
    on_revoked: Callable[..., None] | None = None
    # Kinds whose args are internal ids are not offered for job definitions.
    schedulable: bool = True
    # (job name, schedule) seeded by `setup_periodic_tasks`.
    default_schedule: tuple[str, dict] | None = None
    # Work on everyone's data (maintenance): only staff may define or trigger it as a job.
    staff_only: bool = False
    # Work on its owner's data (a digest reads its owner's documents): a job of it needs an owner.
    owner_required: bool = False
    # At most this many of one owner's runs of this kind wait in the broker at once; the rest are
    # published as those finish, so one user's batch does not queue everyone else behind it.
    fair_share: int | None = None
    # At most this many of one parent's children of this kind wait in the broker at once; the rest
    # are published as those end, so one large fan-out does not take the whole queue from others.
    parent_share: int | None = None
    # What a job of this kind last produced, shown with the job (API and admin): `job_output(job)`
    # returns a small JSON object, or None while there is nothing yet.
    job_output: Callable[..., dict | None] | None = None
    # Checks of params that JSON Schema cannot express (`params_check(params)` raises a DomainError).
    params_check: Callable[[dict], None] | None = None
    # What a worker process loads before it takes its first message (a model, a client), so that
    # no run's time limit pays for start-up: called once per process consuming the kind's queue.
    warm_up: Callable[[], None] | None = None

    @property
    def hard_limit(self) -> int:
        return self.time_limit or settings.CELERY_TASK_TIME_LIMIT

    @property
    def soft_limit(self) -> int:
        return self.soft_time_limit or settings.CELERY_TASK_SOFT_TIME_LIMIT

    def validate_params(self, params: Any) -> dict:
        if not isinstance(params, dict):
            raise JobsError("params must be a JSON object.", field="params")
        try:
            jsonschema.validate(params, self.params_schema)
        except jsonschema.ValidationError as exc:
            where = ".".join(str(p) for p in exc.absolute_path) or "params"
            raise JobsError(f"{where}: {exc.message}", field=f"params.{where}" if exc.absolute_path else "params")
        if self.params_check is not None:
            try:
                self.params_check(params)
            except DomainError as exc:
                raise JobsError(exc.message, field=exc.field or "params")
        return params


_KINDS: dict[str, JobKind] = {}


def kind_register(spec: JobKind) -> None:
    if spec.soft_time_limit and spec.time_limit and spec.soft_time_limit >= spec.time_limit:
        raise ValueError(f"{spec.kind}: soft_time_limit must be below time_limit")
    _KINDS[spec.kind] = spec


def kind_get(kind: str) -> JobKind:
    try:
        return _KINDS[kind]
    except KeyError:
        raise JobsError(f"Unknown kind {kind!r}; see /api/jobs/kinds/ for the registered ones.", field="kind")


def kind_find(kind: str) -> JobKind | None:
    return _KINDS.get(kind)


def kinds_all() -> list[JobKind]:
    return sorted(_KINDS.values(), key=lambda k: k.kind)


def queues_all() -> list[str]:
    """Every queue a kind (or the platform's own maintenance tasks) is published to."""
    return sorted({spec.queue for spec in _KINDS.values()} | {MAINTENANCE_QUEUE})


def kinds_for(*, user) -> list[JobKind]:
    """The kinds this user may define jobs of."""
    return [k for k in kinds_all() if k.schedulable and (user.is_staff or not k.staff_only)]
