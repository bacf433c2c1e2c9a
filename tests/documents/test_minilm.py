"""The local embedding model without sentence-transformers: the same vectors, the same token counts,
and none of the libraries it leaves out loaded by a process that embeds and chunks."""

import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from documents.pipeline.embed import EMBED_BATCH_SIZE, local_model_dir
from documents.pipeline.minilm import SentenceEncoder

# Loading the model and the libraries it is compared with takes tens of seconds of CPU: these are
# integration tests (real libraries, a real subprocess), kept out of the fast unit layer.
pytestmark = pytest.mark.integration

LICENCES = sorted(Path("/usr/share/common-licenses").glob("*")) or sorted(Path(numpy.__file__).parent.glob("*.py"))


def texts() -> list[str]:
    """Texts of many lengths (a word to past the model's 256 tokens), unicode, and whitespace round them."""
    corpus = [path.read_text(errors="replace") for path in LICENCES[:4]]
    cut = [text[i * 700:i * 700 + (53 * i) % 1900 + 1] for text in corpus for i in range(12)]
    return cut + ["  surrounded by spaces \n", "x", "ﬁle naïve café – ünïcödé", "word " * 600]


@pytest.fixture(scope="module")
def encoder():
    return SentenceEncoder(local_model_dir())


def test_the_vectors_are_sentence_transformers_own(encoder):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(local_model_dir()), device="cpu")
    sample = texts()
    ours = encoder.encode(sample, batch_size=EMBED_BATCH_SIZE)
    theirs = reference.encode(sample, batch_size=EMBED_BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == theirs.shape == (len(sample), 384)
    assert numpy.allclose(ours, theirs, atol=1e-5)
    assert numpy.allclose(numpy.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_a_text_gets_the_same_vector_whatever_its_batch(encoder):
    sample = texts()
    together = encoder.encode(sample, batch_size=16)
    alone = numpy.stack([encoder.encode([text], batch_size=1)[0] for text in sample[:10]])
    assert numpy.allclose(together[:10], alone, atol=1e-5)
    assert encoder.encode([], batch_size=8).shape == (0, 384)


def test_the_chunker_counts_tokens_as_the_models_tokenizer_in_transformers_does():
    from transformers import AutoTokenizer

    from documents.pipeline.chunk import _chunker

    reference = AutoTokenizer.from_pretrained(str(local_model_dir()))
    counter = _chunker().token_counter
    for text in texts():
        assert counter(text) == len(reference.encode(text, add_special_tokens=False))


def test_a_process_that_embeds_and_chunks_never_imports_transformers():
    """What keeps each embedding process about 170 MB smaller: neither library is imported."""
    script = ("import django, sys; django.setup()\n"
              "from documents.pipeline.chunk import text_chunk\n"
              "from documents.pipeline.embed import texts_embed\n"
              "from documents.pipeline.extract import Page\n"
              "assert len(texts_embed(['a question'])[0]) == 384\n"
              "assert text_chunk(pages=[Page(1, 'some text to split')])\n"
              "print(sorted(name for name in ('transformers', 'sentence_transformers') if name in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
