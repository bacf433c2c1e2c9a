"""The hostile corpus through the API and a real worker: for each file, the HTTP answer, the final
state and its message, and a worker that stayed within its budget and alive."""

import threading

import psutil
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from core.errors import PermanentError
from documents.models import Chunk, Document
from documents.pipeline.bounded import text_extract_bounded
from tests.support import hostile
from tests.support.files import docx_bytes, pdf_bytes
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

# What the worker's own processes (main and pool, not the bounded extraction children) may grow by
# while reading the whole corpus. The embedding model is loaded before the baseline is taken.
WORKER_GROWTH_BUDGET_MB = 150

EXPANDING = [
    ("zip-bomb.docx", hostile.zip_bomb_docx, "failed", "EXTRACT_MAX_DECODED_MB"),
    ("flate-bomb.pdf", hostile.flate_bomb_pdf, "failed", "decompression bomb"),
    ("repeated-stream.pdf", hostile.repeated_stream_pdf, "failed", "EXTRACT_MAX_CHARS"),
    ("page-tree-bomb.pdf", hostile.page_tree_bomb_pdf, "failed", "page tree"),
    ("billion-laughs.docx", hostile.billion_laughs_docx, "failed", "could not be read"),
    ("wide.html", hostile.wide_html, "failed", "EXTRACT_MAX_HTML_ELEMENTS"),
    ("deep.html", hostile.deep_html, "ready", ""),
    ("polyglot.pdf", hostile.polyglot_pdf_html, "failed", "could not be read"),
    ("mixed-encoding.txt", hostile.mixed_encoding_text, "ready", ""),
]


class MemoryWatch:
    """Samples the resident memory of the worker's own processes while a block runs."""

    def __init__(self, root_pid: int):
        self.root = psutil.Process(root_pid)
        self.peak = 0
        self._stop = threading.Event()

    def _own(self) -> list[psutil.Process]:
        # The worker's main process and its pool; extraction children (grandchildren) are bounded apart.
        return [self.root, *self.root.children(recursive=False)]

    def rss_mb(self) -> float:
        total = 0
        for proc in self._own():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 1024 / 1024

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss_mb())
            self._stop.wait(0.05)

    def __enter__(self):
        self.baseline = self.rss_mb()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def upload(api, name: str, data: bytes):
    return api.post("/api/documents/", {"file": SimpleUploadedFile(name, data)}, format="multipart")


@pytest.fixture
def warm_worker(celery_worker_process, transactional_db):
    """A worker whose every pool process loaded its model before serving (as `make run`'s do), so the
    baseline holds the model in each of them and any growth is the corpus's."""
    from tests.support import worker as worker_support

    celery_worker_process.stop()
    warm = worker_support.worker("hostile-worker", WORKER_WARM_UP="1").start()
    try:
        wait_until(lambda: len(warm.log_records(message="worker process warmed up", warm_up="ingest_warm_up")) == 2,
                   timeout=120, message="both pool processes to warm up")
        yield warm
    finally:
        warm.stop()


def test_the_hostile_corpus_fails_cleanly_and_the_worker_stays_in_budget(warm_worker, api):
    with MemoryWatch(warm_worker.proc.pid) as memory:
        uploaded = {}
        for name, make, _, _ in EXPANDING:
            response = upload(api, name, make())
            assert response.status_code == 202, (name, response.json())
            uploaded[name] = response.json()["id"]
        for name, _, state, message in EXPANDING:
            document = wait_until(lambda document_id=uploaded[name]: (d := Document.objects.get(id=document_id))
                                  .status in ("ready", "failed") and d, timeout=120, message=f"{name} to finish")
            assert document.status == state, (name, document.error)
            assert message in document.error, (name, document.error)
            if state == "failed":
                assert not Chunk.objects.filter(document=document).exists()  # never a partial text
                assert document.run.attempts == 1  # a refused file is not retried
    assert memory.peak - memory.baseline < WORKER_GROWTH_BUDGET_MB, (memory.baseline, memory.peak)
    # Alive and serving: the next ordinary upload is read as usual.
    after = upload(api, "after.txt", b"Still reading documents after the storm.")
    wait_until(lambda: Document.objects.get(id=after.json()["id"]).status == "ready", timeout=60, message="after")


@pytest.mark.parametrize(("name", "make", "message"), [
    ("picture.txt", hostile.png_bytes, "Unsupported file type"),
    *[(n, (lambda d=d: d), "but the content is") for n, d in [hostile.pdf_named_docx()]],
    ("utf16-without-bom.txt", lambda: "no byte order mark".encode("utf-16-le"), "Unsupported file type"),
])
def test_content_that_lies_about_itself_is_a_400_and_nothing_is_kept(api, name, make, message):
    response = upload(api, name, make())
    assert response.status_code == 400 and message in str(response.json())
    assert not Document.objects.exists()


def test_odd_names_are_kept_only_as_plain_display_names(api):
    response = upload(api, "résumé – v2 (final).txt", b"Experience with tides and harbours.")
    assert response.status_code == 202 and response.json()["original_name"] == "résumé – v2 (final).txt"
    storage_key = Document.objects.get(id=response.json()["id"]).file.name
    assert "résumé" not in storage_key and storage_key.endswith("/original")


def test_the_memory_and_cpu_limits_end_the_reader_not_the_worker():
    # With the character cap out of the way, eight pages of eight million characters need far more.
    # And the CPU limit far off: on a loaded machine the reader may take minutes to reach the memory
    # limit, and only that limit may end it here.
    with override_settings(EXTRACT_MAX_MEMORY_MB=128, EXTRACT_MAX_CHARS=10**9, EXTRACT_MAX_SECONDS=600):
        assert text_extract_bounded(data=docx_bytes(["A paragraph."], [["a"]]), fmt="docx")  # small is fine
        with pytest.raises(PermanentError, match="EXTRACT_MAX_MEMORY_MB"):
            text_extract_bounded(data=hostile.repeated_stream_pdf(), fmt="pdf")
    with override_settings(EXTRACT_MAX_SECONDS=1):
        with pytest.raises(PermanentError, match="EXTRACT_MAX_SECONDS"):
            text_extract_bounded(data=hostile.repeated_stream_pdf(pages=40), fmt="pdf")
    assert text_extract_bounded(data=pdf_bytes(["still fine"]), fmt="pdf")[0].text.strip() == "still fine"


def test_a_docx_with_more_members_than_any_word_document_is_a_400_within_a_second(api):
    """Refused from the archive's end record alone: the web process never reads the directory."""
    import time

    data = hostile.many_members_docx(members=15_000)
    started = time.monotonic()
    response = upload(api, "many-parts.docx", data)
    answered_within = time.monotonic() - started
    assert response.status_code == 400, response.json()
    assert "declares 15001 members" in str(response.json())
    assert answered_within < 1.0
    assert not Document.objects.exists()


def test_the_worker_refuses_such_a_docx_before_reading_it_too():
    with pytest.raises(PermanentError, match="declares 15001 members"):
        text_extract_bounded(data=hostile.many_members_docx(members=15_000), fmt="docx")
