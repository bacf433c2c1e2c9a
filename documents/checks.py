"""Start-up check: the embedding backend's vectors must fit the index column."""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from documents.models import EMBEDDING_DIMENSIONS


def local_model_dimensions() -> int:
    from documents.pipeline.embed import local_model_dir

    pooling = json.loads((local_model_dir() / "1_Pooling" / "config.json").read_text())
    return int(pooling["word_embedding_dimension"])


def embedding_settings_check() -> None:
    backend = settings.EMBEDDING_BACKEND
    if backend not in ("local", "openai"):
        raise ImproperlyConfigured(f"EMBEDDING_BACKEND must be 'local' or 'openai', not {backend!r}.")
    if backend == "openai":
        if not settings.EMBEDDING_API_URL:
            raise ImproperlyConfigured("EMBEDDING_API_URL must be set when EMBEDDING_BACKEND=openai.")
        produced, source = settings.EMBEDDING_DIMENSIONS, "EMBEDDING_DIMENSIONS"
    else:
        produced, source = local_model_dimensions(), "the local MiniLM model"
    if produced != EMBEDDING_DIMENSIONS:
        raise ImproperlyConfigured(
            f"{source} gives {produced}-dimension vectors but the chunk index holds {EMBEDDING_DIMENSIONS}: "
            "set EMBEDDING_DIMENSIONS / EMBEDDING_MODEL to a 384-dimension model or migrate the column."
        )
