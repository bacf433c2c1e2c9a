"""Client of an OpenAI-compatible /v1/embeddings server (EMBEDDING_BACKEND=openai)."""

from __future__ import annotations

import httpx
from django.conf import settings

from core.errors import TransientError
from integrations.http import misconfiguration_check, response_check

# A server that holds a batch longer than this is treated as down: the batch is retried later.
EMBEDDING_TIMEOUT_SECONDS = 60


def embeddings_fetch(texts: list[str]) -> list[list[float]]:
    """One vector per text, in the order given; TransientError or PermanentError as the retry policy needs."""
    headers = {"Authorization": f"Bearer {settings.EMBEDDING_API_KEY}"} if settings.EMBEDDING_API_KEY else {}
    try:
        response = httpx.post(f"{settings.EMBEDDING_API_URL.rstrip('/')}/v1/embeddings", headers=headers,
                              json={"model": settings.EMBEDDING_MODEL, "input": texts},
                              timeout=EMBEDDING_TIMEOUT_SECONDS)
    except httpx.TransportError as exc:
        raise TransientError(f"embedding server unreachable: {type(exc).__name__}")
    misconfiguration_check(response, body=response.content, service="embedding server",
                           key_setting="EMBEDDING_API_KEY", model_setting="EMBEDDING_MODEL")
    response_check(response, service="embedding server")
    try:
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        return [item["embedding"] for item in data]
    except (ValueError, KeyError, TypeError):
        raise TransientError("embedding server answered with an unexpected body")
