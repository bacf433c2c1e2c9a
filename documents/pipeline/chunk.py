"""Token-aware chunking with the embedding model's own tokenizer, keeping page and offsets."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from documents.pipeline.extract import Page

# MiniLM reads at most 256 tokens; two go to [CLS] and [SEP].
CHUNK_TOKENS = 254
# Overlap between neighbouring chunks, as a share of the chunk size, so a sentence cut at a
# boundary is still whole in one of the two chunks.
CHUNK_OVERLAP = 0.15
CHUNKER_CACHE_SIZE = 4096


@dataclass
class TextChunk:
    index: int
    page: int | None
    char_start: int
    char_end: int
    text: str


@lru_cache(maxsize=1)
def _chunker():
    import semchunk
    from tokenizers import Tokenizer

    from documents.pipeline.embed import local_model_dir

    # The model's own tokenizer, counting every token of a text (its file truncates and pads).
    tokenizer = Tokenizer.from_file(str(local_model_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    count = lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)  # noqa: E731
    # semchunk memoises token counts; bounded, or a long-lived worker grows with every document.
    return semchunk.chunkerify(count, chunk_size=CHUNK_TOKENS, cache_maxsize=CHUNKER_CACHE_SIZE)


def chunker_warm_up() -> None:
    _chunker()


def text_chunk(*, pages: list[Page]) -> list[TextChunk]:
    """Chunks in document order; offsets are into the page-joined text ("\\n\\n" between pages)."""
    chunker = _chunker()
    chunks: list[TextChunk] = []
    page_start = 0
    for page in pages:
        if page.text.strip():
            texts, offsets = chunker(page.text, offsets=True, overlap=CHUNK_OVERLAP)
            for text, (start, end) in zip(texts, offsets):
                if text.strip():
                    chunks.append(TextChunk(len(chunks), page.number, page_start + start, page_start + end, text))
        page_start += len(page.text) + 2
    return chunks
