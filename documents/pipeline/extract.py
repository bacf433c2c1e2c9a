"""Text out of PDF, DOCX, plain text and HTML, page by page where pages exist."""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass

from django.conf import settings

from documents.models import DocumentFormat
from jobs.errors import PermanentError

# Text beyond this is not indexed: a safeguard against a small file that expands enormously.
MAX_EXTRACTED_CHARS = 20_000_000


@dataclass
class Page:
    number: int | None
    text: str


def text_decode(*, data: bytes, strict: bool = False) -> str | None:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else Latin-1.

    With strict=True, return None for content that is not text at all (control bytes).
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace")
    if data.startswith(codecs.BOM_UTF16_LE) or data.startswith(codecs.BOM_UTF16_BE):
        return data.decode("utf-16", errors="replace")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A cut in the middle of a multi-byte character at the end of a sniffed prefix is still UTF-8.
        if strict and exc.start >= len(data) - 3:
            text = data[: exc.start].decode("utf-8")
        else:
            text = data.decode("latin-1")
    if strict:
        control = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\r\n\t\f")
        if "\x00" in text or control > len(text[:8192]) * 0.02:
            return None
    return text


def _pdf(data: bytes) -> list[Page]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        count = len(reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"The PDF could not be read: {exc}")
    if count > settings.DOCUMENT_MAX_PAGES:
        raise PermanentError(f"The PDF has {count} pages; the limit is {settings.DOCUMENT_MAX_PAGES} "
                             "(DOCUMENT_MAX_PAGES).")
    pages, total = [], 0
    for number, page in enumerate(reader.pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:  # pypdf raises many types for damaged or hostile streams
            raise PermanentError(f"Page {number} of the PDF could not be read: {exc}")
        total += len(text)
        if total > MAX_EXTRACTED_CHARS:
            raise PermanentError("The PDF expands to more text than allowed; it may be a decompression bomb.")
        pages.append(Page(number, text))
    return pages


def _docx(data: bytes) -> list[Page]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        raise PermanentError(f"The DOCX could not be read: {exc}")
    lines: list[str] = []
    for block in document.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append(Paragraph(block, document).text)
        elif tag == "tbl":
            for row in Table(block, document).rows:
                lines.append(" | ".join(cell.text.strip() for cell in row.cells))
    return [Page(None, "\n".join(lines))]


def _html(data: bytes) -> list[Page]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text_decode(data=data) or "", "html.parser")
    for hidden in soup(["script", "style", "noscript", "template", "head"]):
        hidden.decompose()
    text = soup.get_text("\n")
    lines = [line.strip() for line in text.splitlines()]
    return [Page(None, "\n".join(line for line in lines if line))]


def text_extract(*, data: bytes, fmt: str) -> list[Page]:
    if fmt == DocumentFormat.PDF:
        pages = _pdf(data)
    elif fmt == DocumentFormat.DOCX:
        pages = _docx(data)
    elif fmt == DocumentFormat.HTML:
        pages = _html(data)
    else:
        pages = [Page(None, text_decode(data=data) or "")]
    if not any(page.text.strip() for page in pages):
        hint = " (a scanned PDF needs OCR first)" if fmt == DocumentFormat.PDF else ""
        raise PermanentError(f"No extractable text was found in the {fmt} file{hint}.")
    return pages
