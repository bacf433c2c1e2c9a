from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs and runs"

    def ready(self):
        # Registering the kinds makes them known to the API, the admin and the worker alike.
        from jobs import tasks  # noqa: F401
