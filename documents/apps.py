from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "documents"

    def ready(self):
        from django.conf import settings

        from core.health import HealthCheck, health_check_register
        from core.warm_up import web_warm_up_register
        from documents import tasks  # noqa: F401
        from documents.selectors import search_thread_warm_up, search_warm_up
        from documents.vector_store import vector_store

        # pgvector lives in the database (already checked); Pinecone is a service of its own.
        health_check_register(HealthCheck("vector_store", lambda: vector_store().health(),
                                          applies=lambda: settings.VECTOR_STORE == "pinecone"))
        # A search embeds its query: each web process loads the model before it serves, and each of
        # its request threads opens its database connection and searches once.
        web_warm_up_register(search_warm_up)
        web_warm_up_register(search_thread_warm_up, per_thread=True)
        from documents.checks import embedding_settings_check

        # Every process (web, workers, beat, manage.py) refuses to start with vectors that would not fit.
        embedding_settings_check()
