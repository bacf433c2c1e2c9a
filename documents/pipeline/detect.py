"""Deciding a file's format from its content, not its name."""

from __future__ import annotations

import io
import zipfile
from pathlib import PurePosixPath

from documents.errors import DocumentsError
from documents.models import DocumentFormat

EXTENSIONS = {
    ".pdf": DocumentFormat.PDF,
    ".docx": DocumentFormat.DOCX,
    ".txt": DocumentFormat.TEXT,
    ".md": DocumentFormat.TEXT,
    ".markdown": DocumentFormat.TEXT,
    ".text": DocumentFormat.TEXT,
    ".html": DocumentFormat.HTML,
    ".htm": DocumentFormat.HTML,
}


def _describe_binary(data: bytes) -> str:
    import filetype

    kind = filetype.guess(data)
    return kind.mime if kind else "binary data"


def format_detect(*, data: bytes) -> DocumentFormat:
    if data.startswith(b"%PDF-"):
        return DocumentFormat.PDF
    if data.startswith(b"PK\x03\x04"):
        from documents.pipeline.extract import zip_directory_problem

        if problem := zip_directory_problem(data):  # before the ZIP reader reads every entry
            raise DocumentsError(problem, field="file")
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                if "word/document.xml" in archive.namelist():
                    return DocumentFormat.DOCX
        except zipfile.BadZipFile:
            pass
        raise DocumentsError("Unsupported file: found a ZIP archive that is not a Word (.docx) document.",
                             field="file")
    from documents.pipeline.extract import text_decode

    text = text_decode(data=data[:65536], strict=True)
    if text is None:
        raise DocumentsError(f"Unsupported file type: found {_describe_binary(data)}; "
                             "send PDF, DOCX, plain text, Markdown or HTML.", field="file")
    head = text.lstrip()[:1024].lower()
    if head.startswith("<?xml") and "<html" in head:  # XHTML: an XML declaration, then the page
        return DocumentFormat.HTML
    if head.startswith("<!doctype html") or head.startswith("<html") or ("<body" in head and "</" in head):
        return DocumentFormat.HTML
    return DocumentFormat.TEXT


def name_check(*, name: str, detected: DocumentFormat) -> str:
    """The display name, once it is known not to lie about the content."""
    if "/" in name or "\\" in name or name in ("", ".", "..") or "\x00" in name:
        raise DocumentsError("The file name must be a plain name without a path (no '/', '\\' or '..').",
                             field="file")
    suffix = PurePosixPath(name).suffix.lower()
    if not suffix:
        return name
    claimed = EXTENSIONS.get(suffix)
    if claimed is None:
        raise DocumentsError(f"Extension {suffix} is not supported; the content looks like {detected.label}.",
                             field="file")
    if claimed != detected:
        raise DocumentsError(f"The name says {claimed.label} ({suffix}) but the content is {detected.label}.",
                             field="file")
    return name
