"""Upload → real worker → pgvector → search, for every format; bad inputs; ownership."""

import pytest
from django.core.files.storage import default_storage

from documents.models import Chunk, Document
from tests.support.files import docx_bytes, pdf_bytes, upload
from tests.support.worker import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

LIGHTHOUSE = ("The lighthouse keeper on Skerry Island lit the lamp every evening at dusk.\n"
              "Ships passing the reef relied on its beam to avoid the rocks.")
VOLCANO = "Mount Etna in Sicily is one of the most active volcanoes in the world, erupting lava frequently."
BAKERY = "Sourdough bread needs a starter culture of wild yeast and lactobacilli, fed with flour and water."
ORBIT = "The International Space Station orbits Earth about every ninety minutes at roughly 400 km altitude."


def post(api, name, data, **extra):
    return api.post("/api/documents/", {"file": upload(name, data), **extra}, format="multipart")


def wait_ready(api, document_id, timeout=120):
    def ready():
        body = api.get(f"/api/documents/{document_id}/status/").json()
        assert body["status"] not in ("failed", "cancelled"), body
        return body["status"] == "ready" and body

    return wait_until(ready, timeout=timeout, interval=0.2, message="document to be ready")


def top_hit(api, question, **params):
    results = api.get("/api/search/", {"q": question, **params}).json()["results"]
    return results[0] if results else None


def test_each_format_end_to_end_then_found_by_search(celery_worker, api):
    documents = {
        "pdf": post(api, "lighthouse.pdf", pdf_bytes(["Chapter one.\n" + BAKERY, LIGHTHOUSE])),
        "docx": post(api, "volcano.docx", docx_bytes(["Geology notes.", VOLCANO],
                                                      [["Volcano", "Country"], ["Etna", "Italy"]])),
        "utf16": post(api, "orbit.txt", ("Notes — " + ORBIT).encode("utf-16")),
        "html": post(api, "bakery.html", (
            "<!doctype html><html><head><title>t</title><script>var secret = 'hidden script words';</script>"
            "<style>body{color:red}</style></head><body><p>Pumpernickel is a dense rye bread from Westphalia."
            "</p></body></html>").encode()),
    }
    for response in documents.values():
        assert response.status_code == 202, response.json()
        assert response.json()["run"]["kind"] == "documents.ingest"
    ids = {fmt: response.json()["id"] for fmt, response in documents.items()}
    for document_id in ids.values():
        wait_ready(api, document_id)

    pdf = api.get(f"/api/documents/{ids['pdf']}/").json()
    assert pdf["pages"] == 2 and pdf["chunk_count"] >= 2
    assert all(pdf[f"{stage}_at"] for stage in ("extracting", "chunking", "embedding", "indexing", "ready"))

    hit = top_hit(api, "Who lit the lamp on the island?")
    assert hit["document_id"] == ids["pdf"] and hit["page"] == 2 and "lighthouse" in hit["text"]
    assert top_hit(api, "Which volcano is in Sicily?")["document_id"] == ids["docx"]
    assert "Etna | Italy" in "".join(c.text for c in Chunk.objects.filter(document_id=ids["docx"]))
    assert top_hit(api, "How often does the space station orbit the Earth?")["document_id"] == ids["utf16"]
    assert top_hit(api, "rye bread from Westphalia")["document_id"] == ids["html"]
    html_text = "".join(Chunk.objects.filter(document_id=ids["html"]).values_list("text", flat=True))
    assert "hidden script words" not in html_text and "color:red" not in html_text

    scoped = api.get("/api/search/", {"q": "lamp", "document": ids["docx"]}).json()["results"]
    assert {hit["document_id"] for hit in scoped} == {ids["docx"]}


def test_same_content_again_returns_the_existing_document(celery_worker, api):
    first = post(api, "a.txt", b"Unique text about penguins in Antarctica.")
    again = post(api, "b.txt", b"Unique text about penguins in Antarctica.")
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert Document.objects.count() == 1


def _stored_files():
    try:
        owners, _ = default_storage.listdir("documents")
    except FileNotFoundError:
        return []
    return [f"{o}/{d}" for o in owners for d in default_storage.listdir(f"documents/{o}")[0]]


@pytest.mark.parametrize(
    ("name", "data", "status", "message"),
    [
        ("big.txt", b"a" * (2 * 1024 * 1024 + 1), 413, "limit"),
        ("image.txt", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 400, "image/png"),
        ("report.pdf", b"Just plain text pretending to be a PDF.", 400, "name says PDF"),
        ("empty.txt", b"", 400, "empty"),
        ("tool.exe", b"plain words", 400, ".exe"),
    ],
)
def test_bad_uploads_get_a_clear_answer_and_leave_nothing(api, name, data, status, message):
    before = set(_stored_files())
    response = post(api, name, data)
    assert response.status_code == status, response.content
    assert message.lower() in str(response.json()).lower()
    assert Document.objects.count() == 0 and Chunk.objects.count() == 0
    assert set(_stored_files()) == before


def test_a_name_with_a_path_is_kept_only_as_a_plain_display_name(api):
    response = post(api, "../../etc/passwd.txt", b"harmless words about gardens")
    assert response.status_code == 202
    document = Document.objects.get(id=response.json()["id"])
    assert document.original_name == "passwd.txt"
    assert document.file.name == f"documents/{document.owner_id}/{document.id}/original"


def test_corrupt_pdf_fails_at_once_without_retry_and_leaves_no_chunks(celery_worker, api):
    response = post(api, "broken.pdf", b"%PDF-1.4\n" + b"\x00garbage" * 50)
    assert response.status_code == 202
    document_id = response.json()["id"]
    body = wait_until(lambda: (b := api.get(f"/api/documents/{document_id}/").json())["status"] == "failed" and b,
                      timeout=60, message="document to fail")
    assert body["run"]["attempts"] == 1 and body["run"]["dead"]
    assert "PDF" in body["error"] or "text" in body["error"]
    assert Chunk.objects.count() == 0


def test_another_user_sees_nothing(celery_worker, api, other_api):
    document_id = post(api, "secret.txt", b"The vault combination is kept by the harbour master.").json()["id"]
    wait_ready(api, document_id)
    assert other_api.get(f"/api/documents/{document_id}/").status_code == 404
    assert other_api.get(f"/api/documents/{document_id}/status/").status_code == 404
    assert other_api.delete(f"/api/documents/{document_id}/").status_code == 404
    for mode in ("hybrid", "vector", "keyword"):
        assert api.get("/api/search/", {"q": "vault combination", "mode": mode}).json()["results"], mode
        assert other_api.get("/api/search/", {"q": "vault combination", "mode": mode}).json()["results"] == [], mode
    assert other_api.get("/api/documents/").json()["count"] == 0


def test_delete_removes_chunks_and_the_stored_file(celery_worker, api):
    document_id = post(api, "gone.txt", b"Ephemeral notes about tides and moons.").json()["id"]
    wait_ready(api, document_id)
    key = Document.objects.get(id=document_id).file.name
    assert default_storage.exists(key)
    assert api.delete(f"/api/documents/{document_id}/").status_code == 204
    assert not Chunk.objects.filter(document_id=document_id).exists()
    assert not default_storage.exists(key)


def test_search_input_is_validated(api):
    assert api.get("/api/search/", {"q": "x", "k": 51}).status_code == 400
    assert api.get("/api/search/").status_code == 400
    assert api.get("/api/documents/not-a-uuid/").status_code == 404


def test_search_answers_503_with_a_message_when_the_embedding_server_fails(api):
    from django.test import override_settings

    from tests.support.fake_llm import FakeLLM, Step

    server = FakeLLM()
    try:
        server.embedding_script = [Step(status=500)]
        with override_settings(EMBEDDING_BACKEND="openai", EMBEDDING_API_URL=server.url):
            response = api.get("/api/search/", {"q": "tides"})
    finally:
        server.stop()
    assert response.status_code == 503
    assert "embedding" in str(response.json())


def test_per_user_caps_answer_429_with_retry_after_and_keep_nothing(api, settings):
    settings.DOCUMENT_MAX_IN_FLIGHT = 1
    assert api.post("/api/documents/", {"file": upload("one.txt", b"First note.")}, format="multipart").status_code == 202
    refused = api.post("/api/documents/", {"file": upload("two.txt", b"Second note.")}, format="multipart")
    assert refused.status_code == 429 and "DOCUMENT_MAX_IN_FLIGHT" in refused.json()["error"]["message"]
    assert int(refused["Retry-After"]) > 0
    settings.DOCUMENT_MAX_IN_FLIGHT = 10
    settings.DOCUMENT_MAX_BYTES_PER_DAY = 20
    refused = api.post("/api/documents/", {"file": upload("three.txt", b"Third note, too long.")}, format="multipart")
    assert refused.status_code == 429 and "DOCUMENT_MAX_BYTES_PER_DAY" in refused.json()["error"]["message"]
    assert Document.objects.count() == 1
