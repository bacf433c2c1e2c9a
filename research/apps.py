from django.apps import AppConfig


class ResearchConfig(AppConfig):
    name = "research"

    def ready(self):
        from core.context import context_provider_register
        from research import tasks  # noqa: F401
        from research.selectors import digest_notes_for

        # A chat question about a digest's topic gets the latest such digest as context.
        context_provider_register(digest_notes_for)
