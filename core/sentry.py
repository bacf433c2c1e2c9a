import sentry_sdk
from celery import signals
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

# The baggage entry that names the DSN's key (Sentry's dynamic sampling context).
_DSN_KEY_ENTRY = "sentry-public_key="


def sentry_init(*, dsn: str, environment: str) -> None:
    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration(monitor_beat_tasks=True)],
        send_default_pii=False,
    )
    signals.before_task_publish.connect(_dsn_key_dropped, weak=False, dispatch_uid="sentry-dsn-key-dropped")


def _dsn_key_dropped(headers=None, **kwargs):
    """Sentry's trace propagation writes the DSN's key into the `baggage` header of every task
    message, so anyone who can read the broker (or its append-only file) could send events to the
    project. The worker reports with its own DSN and needs only the trace, so the key is dropped."""
    for holder in (headers or {}, (headers or {}).get("headers") or {}):
        baggage = holder.get("baggage")
        if baggage:
            holder["baggage"] = ",".join(item for item in baggage.split(",")
                                         if not item.strip().startswith(_DSN_KEY_ENTRY))
