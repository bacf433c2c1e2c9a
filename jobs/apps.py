from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs and runs"

    def ready(self):
        # Registering the kinds makes them known to the API, the admin and the worker alike.
        import importlib

        from django.conf import settings

        from jobs import (
            streams,  # noqa: F401  (a run's events_url)
            tasks,  # noqa: F401
        )
        from jobs.health import health_checks_register
        from jobs.services import (
            canvas,  # noqa: F401  (a chain's next run, a chord's body, answer run_ended)
            fan_out,  # noqa: F401  (what waited for an ended run answers run_ended)
            presence,  # noqa: F401  (a worker records its heartbeats)
        )

        health_checks_register()

        # Kinds defined outside the apps (a team's own module, the tests' kinds) register the same way.
        for module in settings.TASK_MODULES_EXTRA:
            importlib.import_module(module)
