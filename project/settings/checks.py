"""Start-up checks: a bad setting stops the process with the variable to fix."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


def check_production_settings(*, secret_key: str, debug: bool, allowed_hosts: list[str]) -> None:
    if not secret_key:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production.")
    if len(secret_key) < 50 or secret_key.startswith("dev-only") or "change-me" in secret_key:
        raise ImproperlyConfigured("SECRET_KEY is too weak for production (or the example's): use at least 50 "
                                   "random characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(64))'.")
    if debug:
        raise ImproperlyConfigured("DEBUG must be off when DJANGO_ENV=production: unset DEBUG or set DEBUG=false.")
    if not allowed_hosts:
        raise ImproperlyConfigured("ALLOWED_HOSTS must list the served host names when DJANGO_ENV=production.")
    if any(host == "*" or host.startswith("*") for host in allowed_hosts):
        raise ImproperlyConfigured("ALLOWED_HOSTS must not contain a wildcard when DJANGO_ENV=production.")


def check_celery_settings(
    *,
    task_serializer: str,
    result_serializer: str,
    accept_content: list[str],
    soft_time_limit: int,
    hard_time_limit: int,
    visibility_timeout: int,
    max_countdown: int,
    prefetch_multiplier: int,
    retry_delays: list[float],
    heartbeat_seconds: float,
    heartbeat_timeout: float,
    max_tasks_per_child: int = 1000,
    default_max_retries: int = 0,
    default_retry_delay: int = 180,
    result_expires: int = 86400,
) -> None:
    # Pickle lets a message run code on the worker; only JSON is accepted.
    if task_serializer != "json":
        raise ImproperlyConfigured(f"CELERY_TASK_SERIALIZER must be 'json', not {task_serializer!r}.")
    if result_serializer != "json":
        raise ImproperlyConfigured(f"CELERY_RESULT_SERIALIZER must be 'json', not {result_serializer!r}.")
    if list(accept_content) != ["json"]:
        raise ImproperlyConfigured(f"CELERY_ACCEPT_CONTENT must be 'json' only, not {','.join(accept_content)!r}.")
    if soft_time_limit >= hard_time_limit:
        raise ImproperlyConfigured(
            f"CELERY_TASK_SOFT_TIME_LIMIT ({soft_time_limit}) must be below CELERY_TASK_TIME_LIMIT ({hard_time_limit})."
        )
    # Redis re-delivers an unacknowledged message after the visibility timeout: below the longest
    # hard limit or countdown, a running or waiting task would be delivered twice.
    longest = max(hard_time_limit, max_countdown, max(retry_delays, default=0))
    if visibility_timeout <= longest:
        raise ImproperlyConfigured(
            f"CELERY_VISIBILITY_TIMEOUT ({visibility_timeout}) must be above the longest hard time limit "
            f"or countdown ({longest} s, from CELERY_TASK_TIME_LIMIT / MAX_RETRY_COUNTDOWN / AI_RETRY_DELAYS)."
        )
    if prefetch_multiplier < 1:
        raise ImproperlyConfigured("CELERY_WORKER_PREFETCH_MULTIPLIER must be 1 or more.")
    if any(delay < 0 for delay in retry_delays):
        raise ImproperlyConfigured("AI_RETRY_DELAYS must be non-negative seconds, e.g. 5,15,30.")
    if max_tasks_per_child < 1:  # billiard refuses 0 too
        raise ImproperlyConfigured("CELERY_WORKER_MAX_TASKS_PER_CHILD must be 1 or more.")
    if default_max_retries < 0:
        raise ImproperlyConfigured("CELERY_TASK_MAX_RETRIES must be 0 or more.")
    if not 0 <= default_retry_delay <= max_countdown:
        raise ImproperlyConfigured(f"CELERY_TASK_DEFAULT_RETRY_DELAY ({default_retry_delay}) must be between 0 and "
                                   f"MAX_RETRY_COUNTDOWN ({max_countdown}).")
    if result_expires < 1:
        raise ImproperlyConfigured("CELERY_RESULT_EXPIRES must be 1 second or more (RESULTS_RETENTION_DAYS: 1 day or more).")
    # A run is taken over after the timeout: it must cover a couple of missed heartbeats.
    if heartbeat_seconds <= 0 or heartbeat_timeout < 2 * heartbeat_seconds:
        raise ImproperlyConfigured(
            f"RUN_HEARTBEAT_TIMEOUT_SECONDS ({heartbeat_timeout}) must be at least twice RUN_HEARTBEAT_SECONDS "
            f"({heartbeat_seconds}), which must be above 0."
        )


def settings_check(namespace: dict) -> None:
    """The checks every environment's settings module ends with (`settings_check(globals())`)."""
    check_celery_settings(
        task_serializer=namespace["CELERY_TASK_SERIALIZER"],
        result_serializer=namespace["CELERY_RESULT_SERIALIZER"],
        accept_content=namespace["CELERY_ACCEPT_CONTENT"],
        soft_time_limit=namespace["CELERY_TASK_SOFT_TIME_LIMIT"],
        hard_time_limit=namespace["CELERY_TASK_TIME_LIMIT"],
        visibility_timeout=namespace["CELERY_BROKER_VISIBILITY_TIMEOUT"],
        max_countdown=namespace["MAX_RETRY_COUNTDOWN"],
        prefetch_multiplier=namespace["CELERY_WORKER_PREFETCH_MULTIPLIER"],
        retry_delays=namespace["AI_RETRY_DELAYS"],
        heartbeat_seconds=namespace["RUN_HEARTBEAT_SECONDS"],
        heartbeat_timeout=namespace["RUN_HEARTBEAT_TIMEOUT_SECONDS"],
        max_tasks_per_child=namespace["CELERY_WORKER_MAX_TASKS_PER_CHILD"],
        default_max_retries=namespace["CELERY_TASK_MAX_RETRIES"],
        default_retry_delay=namespace["CELERY_TASK_DEFAULT_RETRY_DELAY"],
        result_expires=namespace["CELERY_RESULT_EXPIRES"],
    )
