"""Retry policies: pure logic, no database."""

from celery.exceptions import SoftTimeLimitExceeded

from core.errors import PermanentError, TransientError
from jobs.constants import Queue
from jobs.registry import RetryPolicy


def test_fixed_delays_give_the_attempts_and_their_waits():
    policy = RetryPolicy(delays=(5, 15, 30))
    assert policy.max_attempts == 4
    assert [policy.delay_for(TransientError("x"), attempt=n) for n in (1, 2, 3)] == [5.0, 15.0, 30.0]
    assert not policy.should_retry(TransientError("x"), attempt=4)


def test_backoff_with_jitter_stays_under_its_ceiling():
    policy = RetryPolicy(retries=5, backoff=2.0, backoff_max=10)
    for attempt in range(1, 6):
        delays = {policy.delay_for(TransientError("x"), attempt=attempt) for _ in range(50)}
        assert all(0 <= d <= min(10, 2.0 ** attempt) for d in delays)
        assert len(delays) > 1  # jittered


def test_retry_after_wins_up_to_the_cap_and_the_broker_limit(settings):
    settings.MAX_RETRY_COUNTDOWN = 100
    policy = RetryPolicy(delays=(1,), retry_after_cap=60)
    assert policy.delay_for(TransientError("429", retry_after=30), attempt=1) == 30.0
    assert policy.delay_for(TransientError("429", retry_after=3600), attempt=1) == 60.0


def test_permanent_errors_never_retry_and_a_soft_timeout_follows_the_policy():
    policy = RetryPolicy(delays=(1, 2))
    assert not policy.should_retry(PermanentError("bad input"), attempt=1)
    assert policy.should_retry(SoftTimeLimitExceeded(), attempt=1)


def test_a_refusal_is_never_retried_but_a_service_unavailable_or_a_limit_reached_is():
    from core.errors import DomainError, ErrorCode

    policy = RetryPolicy(retries=3)
    assert not policy.should_retry(DomainError("topic must not be empty"), attempt=1)
    assert not policy.should_retry(DomainError("not yours", code=ErrorCode.NOT_FOUND), attempt=1)
    assert policy.should_retry(DomainError("search is unavailable", code=ErrorCode.UNAVAILABLE), attempt=1)
    assert policy.should_retry(DomainError("slow down", code=ErrorCode.THROTTLED, retry_after=7), attempt=1)
    assert policy.delay_for(DomainError("slow down", code=ErrorCode.THROTTLED, retry_after=7), attempt=1) >= 7


def test_a_kind_without_a_policy_follows_celerys_default_retry_settings(settings):
    from jobs.registry import NO_RETRY, default_retry_policy

    settings.CELERY_TASK_MAX_RETRIES, settings.CELERY_TASK_DEFAULT_RETRY_DELAY = 0, 180
    assert default_retry_policy() == NO_RETRY and NO_RETRY.max_attempts == 1
    settings.CELERY_TASK_MAX_RETRIES, settings.CELERY_TASK_DEFAULT_RETRY_DELAY = 3, 20
    policy = default_retry_policy()
    assert policy.max_attempts == 4
    assert [policy.delay_for(RuntimeError("x"), attempt=n) for n in (1, 2, 3)] == [20.0, 20.0, 20.0]


def test_params_problems_are_all_named_on_their_params_in_plain_words():
    import pytest

    from jobs.errors import JobsError
    from jobs.registry import BLANK_PATTERN, JobKind

    spec = JobKind(kind="tests.words", body=lambda ctx: None, queue=Queue.JOBS, description="words", params_schema={
        "type": "object", "additionalProperties": False, "required": ["topic"],
        "properties": {"topic": {"type": "string", "minLength": 1, "maxLength": 20, "pattern": BLANK_PATTERN},
                       "questions": {"type": "array", "maxItems": 2, "uniqueItems": True,
                                     "items": {"type": "string"}},
                       "formats": {"type": "array", "items": {"enum": ["pdf", "text"]}},
                       "limit": {"type": "integer", "minimum": 1}}})
    with pytest.raises(JobsError) as refused:
        spec.validate_params({"questions": ["q?", "q?", "q?"], "formats": ["pdf", "exe"], "limit": 0, "colour": "red"})
    assert refused.value.problems == {
        "params.colour": ["is not a param of this kind."],
        "params.formats.1": ["must be one of: pdf, text."],
        "params.limit": ["must be at least 1."],
        "params.questions": ["takes at most 2 items (it has 3).", "lists the same item twice."],
        "params.topic": ["is required."],
    }
    with pytest.raises(JobsError) as blank:
        spec.validate_params({"topic": "   "})
    assert blank.value.problems == {"params.topic": ["must not be blank."]}
    with pytest.raises(JobsError) as empty:
        spec.validate_params({"topic": ""})
    assert empty.value.problems == {"params.topic": ["must not be empty."]}  # not "blank" as well
