"""Text out of PDF, DOCX, plain text and HTML, page by page where pages exist, within limits.

This module runs in a child process with resource limits (see documents.pipeline.bounded), so it
imports nothing of Django: the limits come as arguments. Cheap checks refuse what can be seen to
be too big without expanding it (ZIP members' declared sizes, the PDF page tree, HTML size and
elements); every format is capped in extracted characters; a refusal names the limit. Extracted
text is normalised to Unicode NFKC, so PDF ligatures ("ﬁ") do not split words.

Child protocol: `python -m documents.pipeline.extract FORMAT LIMITS_JSON`, the file on stdin; a JSON
object on stdout: {"pages": [[number or null, text], ...]} or {"refused": "message"}.
"""

from __future__ import annotations

import codecs
import io
import json
import sys
import unicodedata
import zipfile
from dataclasses import asdict, dataclass

# The values of documents.models.DocumentFormat (not imported: no Django here).
PDF, DOCX, TEXT, HTML = "pdf", "docx", "text", "html"
# A DOCX member that inflates more than this many times its compressed size is a bomb, not prose.
ZIP_MAX_RATIO = 200
# A Word document is a few dozen parts; one with hundreds of images a few thousand. Reading a
# directory of 235,000 entries held a web process 9 s and 150 MB, so the count (and the directory's
# size, for names that are long rather than many) is read from the archive's last record first.
DOCX_MAX_MEMBERS = 10_000
DOCX_MAX_DIRECTORY_BYTES = 4 * 1024 * 1024
_END_OF_DIRECTORY = b"PK\x05\x06"
_ZIP64_LOCATOR, _ZIP64_END = b"PK\x06\x07", b"PK\x06\x06"


@dataclass(frozen=True)
class Limits:
    max_chars: int = 5_000_000
    max_decoded_bytes: int = 200 * 1024 * 1024
    max_pages: int = 500
    max_html_elements: int = 200_000
    memory_mb: int = 512
    seconds: int = 60


@dataclass
class Page:
    number: int | None
    text: str


class ExtractionRefused(Exception):
    """The file is damaged, hostile or over a limit; the message says which and what to change."""


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


def _too_much_text(limits: Limits) -> ExtractionRefused:
    return ExtractionRefused(f"The document expands to more than {limits.max_chars} characters of text "
                             "(EXTRACT_MAX_CHARS); split it or raise the limit.")


def _pdf_page_count(reader, limits: Limits) -> int:
    """Walk the page tree without expanding it: a tree that repeats or nests nodes to claim a
    million pages is refused after a bounded number of nodes."""
    from pypdf.generic import IndirectObject

    budget = limits.max_pages * 4 + 1000
    pages = 0
    stack = [reader.trailer["/Root"]["/Pages"]]
    seen: set[tuple[int, int]] = set()
    while stack:
        node = stack.pop()
        if isinstance(node, IndirectObject):
            ref = (node.idnum, node.generation)
            if ref in seen:
                raise ExtractionRefused("The PDF's page tree refers to the same node twice; it is damaged or hostile.")
            seen.add(ref)
            node = node.get_object()
        budget -= 1
        if budget < 0:
            raise ExtractionRefused(f"The PDF's page tree has more nodes than {limits.max_pages} pages need "
                                    "(DOCUMENT_MAX_PAGES).")
        if node.get("/Type") == "/Pages" or "/Kids" in node:
            stack.extend(node.get("/Kids", []))
        else:
            pages += 1
            if pages > limits.max_pages:
                raise ExtractionRefused(f"The PDF has more than {limits.max_pages} pages (DOCUMENT_MAX_PAGES).")
    return pages


def _pdf(data: bytes, limits: Limits) -> list[Page]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        _pdf_page_count(reader, limits)
        count = len(reader.pages)
    except ExtractionRefused:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ExtractionRefused(f"The PDF could not be read: {type(exc).__name__}")
    if count > limits.max_pages:
        raise ExtractionRefused(f"The PDF has {count} pages; the limit is {limits.max_pages} (DOCUMENT_MAX_PAGES).")
    from pypdf.errors import LimitReachedError

    pages, total = [], 0
    for number, page in enumerate(reader.pages, start=1):
        try:
            text = page.extract_text() or ""
        except MemoryError:
            raise
        except LimitReachedError:
            raise ExtractionRefused(f"Page {number} of the PDF has a stream that decompresses beyond the reader's "
                                    "limit; it looks like a decompression bomb.")
        except Exception as exc:  # pypdf raises many types for damaged or hostile streams
            raise ExtractionRefused(f"Page {number} of the PDF could not be read: {type(exc).__name__}")
        total += len(text)
        if total > limits.max_chars:
            raise _too_much_text(limits)
        pages.append(Page(number, text))
    return pages


def zip_directory_problem(data: bytes) -> str | None:
    """Why a ZIP archive's central directory is too big to read, from its end record alone (None if
    it is not, or if there is no end record: the ZIP reader then refuses the file itself)."""
    import struct

    at = data.rfind(_END_OF_DIRECTORY, max(0, len(data) - 65_535 - 22))
    if at < 0 or len(data) < at + 22:
        return None
    entries, directory_bytes = struct.unpack_from("<HI", data, at + 10)
    if (entries == 0xFFFF or directory_bytes == 0xFFFFFFFF) and data[at - 20:at - 16] == _ZIP64_LOCATOR:
        (record,) = struct.unpack_from("<Q", data, at - 12)
        if data[record:record + 4] == _ZIP64_END and len(data) >= record + 56:
            entries, directory_bytes = struct.unpack_from("<QQ", data, record + 32)
    if entries > DOCX_MAX_MEMBERS:
        return f"The DOCX declares {entries} members; a Word document has far fewer (at most {DOCX_MAX_MEMBERS})."
    if directory_bytes > DOCX_MAX_DIRECTORY_BYTES:
        return (f"The DOCX's table of contents is {directory_bytes} bytes; more than {DOCX_MAX_DIRECTORY_BYTES} "
                "is refused.")
    return None


def _docx_check(data: bytes, limits: Limits) -> None:
    if problem := zip_directory_problem(data):
        raise ExtractionRefused(problem)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise ExtractionRefused("The DOCX is not a readable ZIP archive.")
    declared = sum(member.file_size for member in members)
    if declared > limits.max_decoded_bytes:
        raise ExtractionRefused(f"The DOCX unpacks to {declared} bytes; the limit is {limits.max_decoded_bytes} "
                                "(EXTRACT_MAX_DECODED_MB).")
    for member in members:
        if member.compress_size and member.file_size / member.compress_size > ZIP_MAX_RATIO:
            raise ExtractionRefused(f"The DOCX member {member.filename!r} inflates {member.file_size // member.compress_size}"
                                    f" times its size; more than {ZIP_MAX_RATIO} is refused as a decompression bomb.")


def _docx(data: bytes, limits: Limits) -> list[Page]:
    _docx_check(data, limits)
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except MemoryError:
        raise
    except Exception as exc:
        raise ExtractionRefused(f"The DOCX could not be read: {type(exc).__name__}")
    lines: list[str] = []
    total = 0
    for block in document.element.body.iterchildren():
        tag = block.tag.rsplit("}", 1)[-1]
        if tag == "p":
            lines.append(Paragraph(block, document).text)
        elif tag == "tbl":
            for row in Table(block, document).rows:
                lines.append(" | ".join(cell.text.strip() for cell in row.cells))
        total += len(lines[-1]) if lines else 0
        if total > limits.max_chars:
            raise _too_much_text(limits)
    return [Page(None, "\n".join(lines))]


def _html(data: bytes, limits: Limits) -> list[Page]:
    # Each element needs a "<": an upper bound on the tree that costs one pass over the bytes.
    elements = data.count(b"<")
    if elements > limits.max_html_elements:
        raise ExtractionRefused(f"The HTML has up to {elements} elements; the limit is {limits.max_html_elements} "
                                "(EXTRACT_MAX_HTML_ELEMENTS).")
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(text_decode(data=data) or "", "html.parser")
        for hidden in soup(["script", "style", "noscript", "template", "head"]):
            hidden.decompose()
        text = soup.get_text("\n")
    except RecursionError:
        raise ExtractionRefused("The HTML nests its elements too deeply to read.")
    lines = [line.strip() for line in text.splitlines()]
    return [Page(None, "\n".join(line for line in lines if line))]


def text_extract(*, data: bytes, fmt: str, limits: Limits) -> list[Page]:
    """Pages of NFKC-normalised text, or ExtractionRefused. Call it through the bounded child."""
    if fmt == PDF:
        pages = _pdf(data, limits)
    elif fmt == DOCX:
        pages = _docx(data, limits)
    elif fmt == HTML:
        pages = _html(data, limits)
    else:
        pages = [Page(None, text_decode(data=data) or "")]
    if sum(len(page.text) for page in pages) > limits.max_chars:
        raise _too_much_text(limits)
    pages = [Page(page.number, unicodedata.normalize("NFKC", page.text)) for page in pages]
    if not any(page.text.strip() for page in pages):
        hint = " (a scanned PDF needs OCR first)" if fmt == PDF else ""
        raise ExtractionRefused(f"No extractable text was found in the {fmt} file{hint}.")
    return pages


def _child_main(argv: list[str]) -> int:
    fmt, limits = argv[1], Limits(**json.loads(argv[2]))
    data = sys.stdin.buffer.read()
    try:
        answer = {"pages": [[page.number, page.text] for page in text_extract(data=data, fmt=fmt, limits=limits)]}
    except ExtractionRefused as exc:
        answer = {"refused": str(exc)}
    except MemoryError:
        answer = {"refused": f"Reading the file needs more than {limits.memory_mb} MB of memory "
                             "(EXTRACT_MAX_MEMORY_MB); it may be a decompression bomb."}
    except RecursionError:
        answer = {"refused": "The file nests its structure too deeply to read."}
    sys.stdout.write(json.dumps(answer))
    return 0


def limits_json(limits: Limits) -> str:
    return json.dumps(asdict(limits))


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv))
