from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "documents"

    def ready(self):
        from documents import tasks  # noqa: F401
        from documents.checks import embedding_settings_check

        # Every process (web, workers, beat, manage.py) refuses to start with vectors that would not fit.
        embedding_settings_check()
