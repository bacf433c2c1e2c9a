"""A reply's stream_url, read with a real SSE client (httpx-sse) from `make run` on servers of its own,
its LLM server the fake, which streams as OpenAI does with a pause between pieces."""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest

from tests.support.fake_llm import Step
from tests.support.streaming import follow, follow_in_background
from tests.support.worker import wait_until

pytestmark = pytest.mark.worker

WORDS = "The quick brown fox jumps over the lazy dog while the stream keeps flowing to every client."


@pytest.fixture
def llm(streaming_stack):
    streaming_stack.llm.reset()
    return streaming_stack.llm


def _run(stack, username: str, run_id: str) -> dict:
    return stack.client(username).get(f"/api/runs/{run_id}/").json()


def test_deltas_arrive_while_the_llm_writes_and_join_into_the_saved_reply(streaming_stack, llm):
    llm.default = Step(content=WORDS, piece_delay=0.15)
    posted = streaming_stack.ask("ada")
    assert posted["stream_url"] == f"/api/chat/messages/{posted['message']['id']}/stream/"
    assert posted["events_url"] == f"/api/runs/{posted['run']['id']}/events/"

    received = follow(streaming_stack.client("ada"), posted["stream_url"])

    assert received.status == 200
    first_delta_at = next(at for at, event, _, _ in received.events if event == "delta")
    last_piece_left_at = llm.pieces_sent[-1][0]
    # The first words were on the client's screen while the LLM was still writing the rest.
    assert first_delta_at < last_piece_left_at - 1.0
    assert len(received.of("delta")) > 5
    assert received.names[-1] == "done" and received.names.count("done") == 1
    assert received.of("status")[0]["state"] in ("queued", "started")
    saved = streaming_stack.saved_reply("ada", posted)
    assert received.text == saved["content"] == WORDS
    assert received.of("done")[0]["message"]["content"] == WORDS
    # The tokens the server reported, on the reply and its run.
    assert saved["prompt_tokens"] > 0 and saved["completion_tokens"] == len(WORDS.split(" "))
    run = _run(streaming_stack, "ada", posted["run"]["id"])
    assert (run["prompt_tokens"], run["completion_tokens"]) == (saved["prompt_tokens"], saved["completion_tokens"])
    # Every event has an id to resume after.
    assert all(event_id for _, _, event_id, _ in received.events)


def test_a_dropped_connection_resumes_after_its_last_event_with_no_gap_and_no_duplicate(streaming_stack, llm):
    llm.default = Step(content=WORDS, piece_delay=0.15)
    posted = streaming_stack.ask("ada")
    client = streaming_stack.client("ada")

    first = follow(client, posted["stream_url"], stop_after=lambda r: len(r.of("delta")) >= 4)
    second = follow(client, posted["stream_url"], last_event_id=first.last_id)

    assert len(first.of("delta")) == 4 and second.of("delta")
    assert first.text + second.text == WORDS
    assert second.names[-1] == "done"
    # After the end, from what Redis keeps: the rest after a given event, then the end.
    again = follow(client, posted["stream_url"], last_event_id=first.last_id)
    assert first.text + again.text == WORDS and again.names[-1] == "done"
    # After the end without an id: the whole reply from the database, and its end.
    whole = follow(client, posted["stream_url"])
    assert whole.names == ["delta", "done"] and whole.text == WORDS
    # Resuming after the whole reply gives only its end; after the end, 204 (EventSource stops).
    assert follow(client, posted["stream_url"], last_event_id=whole.events[0][2]).names == ["done"]
    assert client.get(posted["stream_url"], headers={"Last-Event-ID": "end"}).status_code == 204


def test_a_malformed_or_foreign_last_event_id_is_a_400_in_the_one_error_shape(streaming_stack, llm):
    llm.default = Step(content=WORDS, piece_delay=0.05)
    mine, other = streaming_stack.ask("ada"), streaming_stack.ask("ada")
    client = streaming_stack.client("ada")
    foreign = follow(client, other["stream_url"])
    follow(client, mine["stream_url"])

    for bad in ("garbage", "1-2-3", "'; DROP TABLE x", "9" * 40):
        response = client.get(mine["stream_url"], headers={"Last-Event-ID": bad})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"
    # A delta's id of the other reply is not one of this reply's.
    foreign_delta = next(event_id for _, event, event_id, _ in foreign.events if event == "delta")
    response = client.get(mine["stream_url"], headers={"Last-Event-ID": foreign_delta})
    assert response.status_code == 400 and set(response.json()) == {"error"}
    # The query parameter, for clients that cannot set the header, is held to the same.
    assert client.get(mine["stream_url"], params={"last_event_id": "nonsense"}).status_code == 400


def test_another_users_stream_and_events_are_404_and_anonymous_is_401(streaming_stack, llm):
    posted = streaming_stack.ask("ada")
    intruder = streaming_stack.client("mallory")
    for url in (posted["stream_url"], posted["events_url"]):
        response = intruder.get(url)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        anonymous = httpx.get(streaming_stack.base + url, timeout=5)
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"
    assert intruder.get("/api/chat/messages/999999999/stream/").status_code == 404


def test_stop_ends_the_stream_within_a_second_closes_the_llm_and_keeps_the_text_so_far(streaming_stack, llm):
    llm.default = Step(content=WORDS * 3, piece_delay=0.2)
    posted = streaming_stack.ask("ada")
    client = streaming_stack.client("ada")
    thread, box = follow_in_background(client, posted["stream_url"])
    wait_until(lambda: len(llm.pieces_sent) >= 3, timeout=60, interval=0.05, message="the LLM to be writing")

    cancelled_at = time.monotonic()
    assert client.post(f"/api/runs/{posted['run']['id']}/cancel/").status_code in (200, 202)
    thread.join(timeout=10)
    received = box["received"]

    assert received.names[-1] == "stopped"
    stopped_at = received.events[-1][0]
    assert stopped_at - cancelled_at < 1.0
    kept = received.of("stopped")[0]["message"]
    assert kept["status"] == "stopped" and kept["content"] == received.text and kept["content"]
    assert streaming_stack.saved_reply("ada", posted)["content"] == received.text
    # The LLM saw its client hang up, and wrote nothing more after the stop.
    wait_until(lambda: llm.hung_up == 1, timeout=5, message="the LLM server to see its client go")
    written = len(llm.pieces_sent)
    time.sleep(1)
    assert len(llm.pieces_sent) == written < len((WORDS * 3).split(" "))
    assert _run(streaming_stack, "ada", posted["run"]["id"])["status"] == "REVOKED"


def test_a_worker_killed_mid_reply_resets_its_listeners_and_one_reply_is_saved(streaming_stack, llm):
    llm.script = [Step(content="This first attempt will never finish " * 10, piece_delay=0.2)]
    llm.default = Step(content=WORDS, piece_delay=0.05)
    posted = streaming_stack.ask("ada")
    client = streaming_stack.client("ada")
    thread, box = follow_in_background(client, posted["stream_url"], timeout=90)
    wait_until(lambda: len(llm.pieces_sent) >= 3, timeout=60, interval=0.05, message="the LLM to be writing")

    holder = _run(streaming_stack, "ada", posted["run"]["id"])["worker"]
    os.kill(int(holder.rsplit(":", 1)[1]), signal.SIGKILL)
    thread.join(timeout=90)
    received = box["received"]

    assert received.names[-1] == "done", received.names
    assert "reset" in received.names
    before_reset = received.names.index("reset")
    assert "delta" in received.names[:before_reset]  # the lost attempt's words were shown, then discarded
    assert received.text == WORDS
    saved = streaming_stack.saved_reply("ada", posted)  # asserts there is one
    assert saved["content"] == WORDS and saved["status"] == "complete"
    assert _run(streaming_stack, "ada", posted["run"]["id"])["attempts"] == 2


def test_retries_show_as_events_and_the_apology_arrives_as_the_terminal_event(streaming_stack, llm):
    llm.script = [Step(status=500)] * 4
    posted = streaming_stack.ask("ada")
    received = follow(streaming_stack.client("ada"), posted["stream_url"], timeout=90)

    retrying = [s for s in received.of("status") if s["state"] == "retrying"]
    assert len(retrying) == 3 and all(s["retry_at"] for s in retrying)
    assert received.names[-1] == "error"
    apology = received.of("error")[0]
    assert apology["message"]["status"] == "failed" and "Sorry" in apology["message"]["content"]
    assert "500" in apology["error"]


def test_a_retried_failure_mid_answer_resets_then_streams_the_new_attempt(streaming_stack, llm):
    llm.script = [Step(content=WORDS, piece_delay=0.05, cut_after=5)]
    llm.default = Step(content="Second time lucky.", piece_delay=0.05)
    posted = streaming_stack.ask("ada")
    received = follow(streaming_stack.client("ada"), posted["stream_url"], timeout=60)

    assert received.names.count("reset") == 1 and received.names[-1] == "done"
    assert received.text == "Second time lucky." == streaming_stack.saved_reply("ada", posted)["content"]


def test_tokens_are_summed_per_user_in_stats_and_exported_as_a_counter(streaming_stack, llm):
    llm.default = Step(content="Counted words here.", piece_delay=0.01)
    client = streaming_stack.client("grace")
    before = client.get("/api/runs/stats/").json()["tokens"]
    for _ in range(2):
        follow(client, streaming_stack.ask("grace")["stream_url"])
    after = client.get("/api/runs/stats/").json()["tokens"]
    assert after["completion_tokens"] - before["completion_tokens"] == 6
    assert after["prompt_tokens"] > before["prompt_tokens"] and after["answers_without_counts"] == 0
    metrics = httpx.get(f"{streaming_stack.base}/metrics", timeout=5).text
    assert 'llm_tokens_total{type="completion"}' in metrics


def test_a_server_that_reports_no_usage_leaves_the_counts_empty(streaming_stack, llm):
    llm.default = Step(content="No counts from me.", usage=False)
    posted = streaming_stack.ask("hopper")
    follow(streaming_stack.client("hopper"), posted["stream_url"])
    saved = streaming_stack.saved_reply("hopper", posted)
    assert saved["content"] == "No counts from me." and saved["prompt_tokens"] is None
    assert streaming_stack.client("hopper").get("/api/runs/stats/").json()["tokens"]["answers_without_counts"] >= 1


def test_a_user_is_held_to_their_open_streams_limit(streaming_stack, llm):
    llm.default = Step(content=WORDS, piece_delay=5)  # replies that stay open
    client = streaming_stack.client("greedy")
    posted = [streaming_stack.ask("greedy") for _ in range(3)]
    streams, responses = [], []
    try:
        for n in range(20):
            stream = client.stream("GET", posted[n % 3]["stream_url"])
            responses.append(stream.__enter__())
            streams.append(stream)
        assert all(r.status_code == 200 for r in responses)
        refused = client.get(posted[0]["stream_url"])
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["code"] == "throttled"
        # Another user is not held by this one's streams.
        with streaming_stack.client("ada").stream("GET", posted_by_ada := streaming_stack.ask("ada")["stream_url"]) as own:
            assert own.status_code == 200, posted_by_ada
    finally:
        for stream in streams:
            stream.__exit__(None, None, None)

    def place_again() -> bool:
        with client.stream("GET", posted[0]["stream_url"]) as again:
            return again.status_code == 200

    wait_until(place_again, timeout=10, message="closed streams to give their places back")
    for p in posted:
        client.post(f"/api/runs/{p['run']['id']}/cancel/")
