"""Extraction in a child process with resource limits, so no upload can take a worker above a
fixed memory budget (EXTRACT_MAX_MEMORY_MB, address space) or hold it longer than
EXTRACT_MAX_SECONDS (CPU, and wall time). A child that hits a limit is gone; the worker is not.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

from core.errors import PermanentError
from documents.pipeline.extract import Limits, Page, limits_json

logger = logging.getLogger(__name__)

BASE_DIR = Path(__file__).resolve().parents[2]
# Wall time beyond the CPU limit: reading stdin and starting Python are not the file's fault.
WALL_MARGIN_SECONDS = 10


def extract_limits() -> Limits:
    return Limits(max_chars=settings.EXTRACT_MAX_CHARS, max_decoded_bytes=settings.EXTRACT_MAX_DECODED_MB * 1024 * 1024,
                  max_pages=settings.DOCUMENT_MAX_PAGES, max_html_elements=settings.EXTRACT_MAX_HTML_ELEMENTS,
                  memory_mb=settings.EXTRACT_MAX_MEMORY_MB, seconds=settings.EXTRACT_MAX_SECONDS)


def _limit_child(limits: Limits):
    def apply() -> None:
        memory = limits.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (limits.seconds, limits.seconds + 1))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def text_extract_bounded(*, data: bytes, fmt: str) -> list[Page]:
    """Pages of text, or PermanentError naming the limit the file hit (never a partial text)."""
    limits = extract_limits()
    started = time.monotonic()
    try:
        child = subprocess.run(
            [sys.executable, "-m", "documents.pipeline.extract", str(fmt), limits_json(limits)],
            input=data, capture_output=True, cwd=BASE_DIR, preexec_fn=_limit_child(limits),
            timeout=limits.seconds + WALL_MARGIN_SECONDS, env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0"},
        )
    except subprocess.TimeoutExpired:
        raise PermanentError(f"Reading the file took longer than {limits.seconds} s (EXTRACT_MAX_SECONDS).")
    seconds = round(time.monotonic() - started, 3)
    if child.returncode != 0:
        logger.warning("extraction child ended abnormally", extra={
            "format": str(fmt), "returncode": child.returncode, "seconds": seconds,
            "stderr_tail": child.stderr.decode(errors="replace")[-300:]})
        if child.returncode in (-9, -24):  # SIGKILL / SIGXCPU: the CPU limit
            raise PermanentError(f"Reading the file took longer than {limits.seconds} s of CPU "
                                 "(EXTRACT_MAX_SECONDS).")
        raise PermanentError(f"Reading the file needs more than {limits.memory_mb} MB of memory "
                             "(EXTRACT_MAX_MEMORY_MB), or the file is damaged.")
    try:
        answer = json.loads(child.stdout)
    except ValueError:
        raise PermanentError("The file could not be read (the reader gave no usable answer).")
    if "refused" in answer:
        raise PermanentError(answer["refused"])
    logger.info("text extracted", extra={"format": str(fmt), "seconds": seconds, "pages": len(answer["pages"])})
    return [Page(number, text) for number, text in answer["pages"]]
