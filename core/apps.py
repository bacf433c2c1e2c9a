from django.apps import AppConfig


class CoreConfig(AppConfig):
    """The shared ground as an installed app: what every process does once Django is set up."""

    name = "core"
    verbose_name = "Core"

    def ready(self):
        from django.conf import settings
        from django.db.models.signals import post_migrate

        import core.schema  # noqa: F401  (registers the schema's authentication extension)
        from core.roles import _after_migrate

        post_migrate.connect(_after_migrate, dispatch_uid="core.roles")

        # Here rather than in settings, so that importing settings changes nothing.
        if settings.SENTRY_DSN:
            from core.sentry import sentry_init

            sentry_init(dsn=settings.SENTRY_DSN, environment=settings.SENTRY_ENVIRONMENT)
