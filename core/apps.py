from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The shared ground as an installed app: what every process does once Django is set up."""

    name = "core"
    verbose_name = "Core"

    def ready(self):
        from django.conf import settings

        import core.schema  # noqa: F401  (registers the schema's authentication extension)

        # Here rather than in settings, so that importing settings changes nothing.
        if settings.SENTRY_DSN:
            from core.sentry import sentry_init

            sentry_init(dsn=settings.SENTRY_DSN, environment=settings.SENTRY_ENVIRONMENT)
