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

from core.errors import DomainError, PermanentError, Problems
from jobs.constants import Queue
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
    # Without one, the policy of CELERY_TASK_MAX_RETRIES and CELERY_TASK_DEFAULT_RETRY_DELAY.
    retry: RetryPolicy = field(default_factory=lambda: default_retry_policy())
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

    def takes_param(self, name: str) -> bool:
        """Whether the kind's params may hold `name` (named in its schema, or any name allowed)."""
        schema = self.params_schema or {}
        return name in (schema.get("properties") or {}) or schema.get("additionalProperties", True) is not False

    def validate_params(self, params: Any) -> dict:
        """`params` if they fit the kind's schema and its params_check; else a JobsError naming every
        problem, each on its param (`params.<name>`), in words rather than the schema's."""
        if not isinstance(params, dict):
            raise JobsError("params must be a JSON object.", field="params")
        problems = Problems()
        validator = jsonschema.validators.validator_for(self.params_schema)(self.params_schema)
        for error in sorted(validator.iter_errors(params), key=lambda e: [str(p) for p in e.absolute_path]):
            for where, message in schema_problems(error):
                if error.validator == "pattern" and where in problems.by_field:
                    continue  # already named for this param (an empty text is blank, too)
                problems.add(where, message)
        if not problems.by_field and self.params_check is not None:
            with problems.checking("params"):
                try:
                    self.params_check(params)
                except DomainError as exc:
                    raise JobsError(exc.message, field=exc.field or "params")
        problems.raise_any(JobsError)
        return params


# The pattern params schemas use for "not blank" (research/tasks.py): more than spaces.
BLANK_PATTERN = r"\S"
# JSON Schema's types, as a person would say what a value must be.
_TYPE_WORDS = {"string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "an object", "null": "empty"}


def schema_problems(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    """One JSON Schema error of a kind's params as (field, message) pairs a user understands: the
    param's field (`params.<name>`, `params.<name>.<index>` for an item of a list), and what to
    change, never the schema's pattern or the value echoed back whole."""
    where = ".".join(["params", *(str(p) for p in error.absolute_path)])  # an item by its index: params.formats.0
    rule, bound, value = error.validator, error.validator_value, error.instance
    if rule == "required":
        return [(f"{where}.{name}", "is required.") for name in bound if isinstance(value, dict) and name not in value]
    if rule == "additionalProperties":
        known = set((error.schema.get("properties") or {}))
        return [(f"{where}.{name}", "is not a param of this kind.") for name in sorted(set(value) - known)]
    if rule == "type":
        kinds = bound if isinstance(bound, list) else [bound]
        message = "must be " + " or ".join(_TYPE_WORDS.get(k, k) for k in kinds) + "."
    elif rule == "enum":
        message = "must be one of: " + ", ".join(str(choice) for choice in bound) + "."
    elif rule == "minLength":
        message = "must not be empty." if bound == 1 else f"must be at least {bound} characters."
    elif rule == "maxLength":
        message = f"must be at most {bound} characters (it has {len(value)})."
    elif rule == "minItems":
        message = f"needs at least {bound} item{'s' if bound != 1 else ''}."
    elif rule == "maxItems":
        message = f"takes at most {bound} items (it has {len(value)})."
    elif rule in ("minimum", "exclusiveMinimum"):
        message = f"must be {'at least' if rule == 'minimum' else 'more than'} {bound}."
    elif rule in ("maximum", "exclusiveMaximum"):
        message = f"must be {'at most' if rule == 'maximum' else 'less than'} {bound}."
    elif rule == "uniqueItems":
        message = "lists the same item twice."
    elif rule == "pattern":
        message = "must not be blank." if bound == BLANK_PATTERN else "is not in the expected form."
    else:
        message = "is not valid."
    return [(where, message)]


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
    return sorted(str(queue) for queue in {spec.queue for spec in _KINDS.values()} | {Queue.MAINTENANCE})


def runs_everyones_work(user) -> bool:
    """Whether `user` may define and run staff-only kinds (maintenance on everyone's data), and
    schedule jobs faster than JOB_MIN_INTERVAL_SECONDS: an operator, staff with the permission to
    change jobs (core.permissions), not staff alone."""
    from core.permissions import may_act_on_others
    from jobs.models import Job

    return may_act_on_others(user, Job, "change")


def kinds_for(*, user) -> list[JobKind]:
    """The kinds this user may define jobs of."""
    everyones = runs_everyones_work(user)
    return [k for k in kinds_all() if k.schedulable and (everyones or not k.staff_only)]
