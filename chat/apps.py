from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"

    def ready(self):
        from chat import (
            streams,  # noqa: F401  (a reply's stream_url)
            tasks,  # noqa: F401
        )
        from core.health import CheckFailed, HealthCheck, health_check_register
        from integrations.http import ServiceMisconfigured
        from integrations.llm import ai_server_health, llm_configured

        def ai_server_probe() -> str:
            try:
                return ai_server_health(use_cache=False)
            except ServiceMisconfigured as exc:  # our own words: they name the setting, never the key
                raise CheckFailed(f"rejecting the configuration: {exc}")

        # Replies, summaries and digests wait for an unhealthy LLM server: it degrades the service.
        health_check_register(HealthCheck(
            "ai_server", ai_server_probe,
            unconfigured=lambda: None if llm_configured() else "AI_SERVER_URL is not set"))
