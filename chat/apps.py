from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self):
        from chat import tasks  # noqa: F401
        from core.health import HealthCheck, health_check_register
        from integrations.llm import ai_server_health, llm_configured

        # Replies, summaries and digests wait for an unhealthy LLM server: it degrades the service.
        health_check_register(HealthCheck(
            "ai_server", lambda: ai_server_health(use_cache=False),
            unconfigured=lambda: None if llm_configured() else "AI_SERVER_URL is not set"))
