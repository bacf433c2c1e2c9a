"""Extraction, chunking and the embedding backends on real files and real HTTP."""

import codecs

import pytest
from django.test import override_settings

from core.errors import PermanentError, TransientError
from documents.pipeline.bounded import text_extract_bounded as text_extract
from documents.pipeline.chunk import CHUNK_TOKENS, _chunker, text_chunk
from documents.pipeline.embed import texts_embed
from documents.pipeline.extract import Page, text_decode
from tests.support.fake_llm import FakeLLM, Step
from tests.support.files import docx_bytes, pdf_bytes


def test_pdf_pages_are_numbered_and_the_page_limit_holds():
    pages = text_extract(data=pdf_bytes(["first page words", "second page words"]), fmt="pdf")
    assert [(p.number, p.text.strip()) for p in pages] == [(1, "first page words"), (2, "second page words")]
    with override_settings(DOCUMENT_MAX_PAGES=1), pytest.raises(PermanentError, match="DOCUMENT_MAX_PAGES"):
        text_extract(data=pdf_bytes(["a", "b"]), fmt="pdf")


def test_pdf_without_text_fails_with_a_clear_error():
    with pytest.raises(PermanentError, match="No extractable text"):
        text_extract(data=pdf_bytes([""]), fmt="pdf")


def test_ligatures_are_normalised_so_words_stay_whole():
    [page] = text_extract(data="The \ufb01nal e\ufb00ort, \uff21\uff22\uff23.".encode(), fmt="text")
    assert page.text == "The final effort, ABC."


def test_xhtml_is_read_as_html():
    from documents.pipeline.detect import format_detect

    data = (b'<?xml version="1.0" encoding="utf-8"?>\n'
            b'<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Tide table</p></body></html>')
    assert format_detect(data=data) == "html"
    assert text_extract(data=data, fmt="html")[0].text == "Tide table"


def test_docx_keeps_tables_in_document_order():
    [page] = text_extract(data=docx_bytes(["Before the table."], [["a", "b"], ["c", "d"]]), fmt="docx")
    assert page.text.splitlines() == ["Before the table.", "a | b", "c | d"]


@pytest.mark.parametrize(("data", "text"), [
    (codecs.BOM_UTF8 + "café".encode(), "café"),
    ("naïve".encode("utf-16"), "naïve"),
    ("señor".encode("latin-1"), "señor"),
])
def test_text_encodings(data, text):
    assert text_decode(data=data) == text


def test_chunks_fit_the_model_and_keep_offsets():
    text = " ".join(f"Sentence number {i} talks about measured tides and channels." for i in range(300))
    chunks = text_chunk(pages=[Page(3, text)])
    assert len(chunks) > 5
    count_tokens = _chunker().token_counter
    for chunk in chunks:
        assert chunk.page == 3
        assert text[chunk.char_start:chunk.char_end] == chunk.text
        assert 0 < count_tokens(chunk.text) <= CHUNK_TOKENS
    # Overlap: each chunk starts before the previous one ends.
    assert all(b.char_start < a.char_end for a, b in zip(chunks, chunks[1:]))


@pytest.fixture
def embedding_server():
    server = FakeLLM()
    with override_settings(EMBEDDING_BACKEND="openai", EMBEDDING_API_URL=server.url, EMBEDDING_API_KEY="ek"):
        yield server
    server.stop()


def test_openai_embeddings_backend_batches_and_orders(embedding_server):
    vectors = texts_embed(["alpha", "beta", "gamma"])
    assert len(vectors) == 3 and len(vectors[0]) == 384
    assert vectors[0] == embedding_server.embedding_vector("alpha")
    assert embedding_server.embedding_requests[0]["input"] == ["alpha", "beta", "gamma"]


def test_openai_embeddings_backend_classifies_failures(embedding_server):
    embedding_server.embedding_script = [Step(status=429, headers={"Retry-After": "7"})]
    with pytest.raises(TransientError) as caught:
        texts_embed(["x"])
    assert caught.value.retry_after == 7.0
    embedding_server.embedding_script = [Step(status=401)]
    with pytest.raises(PermanentError):
        texts_embed(["x"])
    embedding_server.dimensions = 1536
    with pytest.raises(PermanentError, match="dimensions"):
        texts_embed(["x"])


@pytest.mark.unit
def test_a_zip_directory_is_judged_from_its_end_record():
    from documents.pipeline.extract import DOCX_MAX_MEMBERS, zip_directory_problem
    from tests.support import hostile

    assert zip_directory_problem(docx_bytes(["An ordinary document."], [["cell"]])) is None
    assert zip_directory_problem(hostile.many_members_docx(members=DOCX_MAX_MEMBERS - 1)) is None
    assert f"declares {DOCX_MAX_MEMBERS + 2} members" in zip_directory_problem(
        hostile.many_members_docx(members=DOCX_MAX_MEMBERS + 1))
    assert zip_directory_problem(b"PK\x03\x04 not really an archive") is None  # the ZIP reader refuses it
