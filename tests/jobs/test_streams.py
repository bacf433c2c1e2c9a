"""A run's events_url, followed with a real SSE client while an ingestion runs on `make run`."""

from __future__ import annotations

import pytest

from tests.support.streaming import follow

pytestmark = pytest.mark.worker


def test_an_ingestions_events_go_from_progress_to_success_and_resume_after_a_log_line(streaming_stack):
    client = streaming_stack.client("ada")
    text = "\n\n".join(f"Paragraph {n} about tidal energy and the moon's pull on the sea." * 6 for n in range(400))
    response = client.post("/api/documents/", files={"file": ("tides.txt", text.encode(), "text/plain")})
    assert response.status_code == 202, response.text
    accepted = response.json()
    events_url = accepted["events_url"]
    assert events_url == f"/api/runs/{accepted['task_id']}/events/"

    received = follow(client, events_url, timeout=240)

    assert received.status == 200
    assert received.names[-1] == "status" and received.of("status")[-1]["status"] == "SUCCESS"
    assert received.events[-1][2] == "end"
    progress = received.of("progress")
    assert len(progress) >= 2, received.names
    assert all({"current", "total", "step", "eta_seconds", "percent"} <= set(p) for p in progress)
    assert [p["current"] for p in progress] == sorted(p["current"] for p in progress if p["step"] == progress[0]["step"]) \
        or len({p["step"] for p in progress}) > 1
    lines = received.of("log")
    assert lines and all(line["message"] for line in lines)
    # The run's own representation says where its events are.
    assert client.get(f"/api/runs/{accepted['task_id']}/").json()["events_url"] == events_url
    assert client.get(f"/api/tasks/{accepted['task_id']}/").json()["events_url"] == events_url

    # Resuming after a log line: the state now, then only the lines after it.
    first_line = lines[0]["id"]
    resumed = follow(client, events_url, last_event_id=str(first_line))
    assert [line["id"] for line in resumed.of("log")] == [line["id"] for line in lines[1:]]
    assert resumed.names[-1] == "status" and resumed.of("status")[-1]["status"] == "SUCCESS"
    # An id that is not one of this run's lines is refused in the one error shape.
    refused = client.get(events_url, headers={"Last-Event-ID": "999999999"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid"
    assert client.get(events_url, headers={"Last-Event-ID": "end"}).status_code == 204
