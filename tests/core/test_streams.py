"""Streams as the web process serves them (core/streams.py), tried against `make run` on servers of
its own: keep-alives, many listeners beside a fast API, a client that never reads, Redis frozen;
and, alone, how long a stream's database call may be held."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest

from core import streams
from tests.support.fake_llm import Step
from tests.support.streaming import follow, follow_in_background
from tests.support.worker import wait_until

# What every request may cost while streams are open or Redis is frozen, as the API promises.
ANSWER_WITHIN_SECONDS = 1.0


@pytest.fixture
def llm(streaming_stack):
    streaming_stack.llm.reset()
    return streaming_stack.llm


@pytest.fixture
def one_stream_thread(monkeypatch):
    monkeypatch.setattr(streams, "_threads", streams._StreamThreads(1))


@pytest.mark.unit
def test_calls_queued_behind_a_burst_wait_their_turn_past_the_timeout(one_stream_thread):
    async def burst():
        return await asyncio.gather(*(streams._in_thread(lambda n=n: time.sleep(0.04) or n, timeout=0.15)
                                      for n in range(12)))

    started = time.monotonic()
    assert asyncio.run(burst()) == list(range(12))
    assert time.monotonic() - started > 0.15 * 2  # the last ones waited far longer than the timeout


@pytest.mark.unit
def test_a_call_that_hangs_and_the_calls_queued_behind_it_give_up_after_the_timeout(one_stream_thread):
    released = threading.Event()

    async def hung():
        return await asyncio.gather(streams._in_thread(lambda: released.wait(5), timeout=0.2),
                                    streams._in_thread(lambda: "never", timeout=0.2), return_exceptions=True)

    started = time.monotonic()
    try:
        outcomes = asyncio.run(hung())
    finally:
        released.set()
    assert [type(outcome) for outcome in outcomes] == [TimeoutError, TimeoutError]
    assert time.monotonic() - started < 1.5


def _raw_get(stack, path: str, token: str, *, receive_buffer: int | None = None) -> socket.socket:
    """A GET written by hand on a socket: a client that decides itself when (and whether) to read."""
    sock = socket.socket()
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect(("127.0.0.1", stack.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    return sock


def _token(client: httpx.Client) -> str:
    return client.headers["Authorization"].split()[-1]


def test_an_idle_stream_gets_keep_alive_comments_and_proxy_headers(streaming_stack, llm):
    llm.default = Step(content="Slow.", delay=4)  # the server holds the answer: nothing to say meanwhile
    posted = streaming_stack.ask("ada")
    client = streaming_stack.client("ada")
    with client.stream("GET", posted["stream_url"]) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        assert "no-cache" in response.headers["cache-control"]
        seen = b""
        started = time.monotonic()
        for chunk in response.iter_bytes():
            seen += chunk
            if seen.count(b": keep-alive") >= 2 or time.monotonic() - started > 10:
                break
    assert seen.count(b": keep-alive") >= 2  # STREAM_KEEPALIVE_SECONDS is 1 here
    client.post(f"/api/runs/{posted['run']['id']}/cancel/")


def test_two_hundred_open_streams_leave_the_api_answering_within_a_second(streaming_stack, llm):
    llm.default = Step(content="Held.", delay=30)
    users = [f"listener{n}" for n in range(10)]
    streaming_stack.clients(*users)
    posted = {user: streaming_stack.ask(user) for user in users}
    sockets = []
    try:
        for user in users:
            token = _token(streaming_stack.client(user))
            for _ in range(20):
                sockets.append(_raw_get(streaming_stack, posted[user]["stream_url"], token))
        heads = [sock.recv(200) for sock in sockets]
        assert all(head.startswith(b"HTTP/1.1 200") for head in heads), {h[:30] for h in heads}

        api = streaming_stack.client("ada")
        slowest = 0.0
        for _ in range(30):
            for path in ("/api/runs/", "/api/documents/", "/api/runs/stats/", "/api/health/"):
                started = time.monotonic()
                assert api.get(path).status_code == 200
                slowest = max(slowest, time.monotonic() - started)
        assert slowest < ANSWER_WITHIN_SECONDS
        # And a reply still streams to its reader beside them, once a held one gives up its worker.
        streaming_stack.client(users[0]).post(f"/api/runs/{posted[users[0]]['run']['id']}/cancel/")
        llm.default = Step(content="Still streaming beside them.", piece_delay=0.02)
        assert follow(api, streaming_stack.ask("ada")["stream_url"]).text == "Still streaming beside them."
    finally:
        for sock in sockets:
            sock.close()
        for user in users:
            streaming_stack.client(user).post(f"/api/runs/{posted[user]['run']['id']}/cancel/")


def test_a_client_that_never_reads_is_dropped_and_counted(streaming_stack, llm):
    # A long reply in large pieces: far more than the socket buffers of a client that reads nothing.
    piece = "x" * 4000 + " "
    llm.default = Step(pieces=[piece] * 1500, piece_delay=0.001)
    metrics = lambda: httpx.get(f"{streaming_stack.base}/metrics", timeout=5).text  # noqa: E731
    dropped_before = _counter(metrics(), "streams_dropped_total")
    posted = streaming_stack.ask("ada")
    sock = _raw_get(streaming_stack, posted["stream_url"], _token(streaming_stack.client("ada")), receive_buffer=4096)
    try:
        wait_until(lambda: _counter(metrics(), "streams_dropped_total") > dropped_before, timeout=60, interval=0.5,
                   message="the stalled stream to be dropped")
        # Dropped: the server closed its end, so what is left to read ends.
        sock.settimeout(10)
        while sock.recv(65536):
            pass
    finally:
        sock.close()
    # A reader coming back with nothing reads the reply whole, once it is saved.
    client = streaming_stack.client("ada")
    wait_until(lambda: client.get(f"/api/runs/{posted['run']['id']}/").json()["status"] == "SUCCESS", timeout=60,
               message="the reply to be saved")
    assert follow(client, posted["stream_url"]).text == piece * 1500


def _counter(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


def test_with_redis_frozen_streams_say_so_follow_the_database_and_the_reply_completes(streaming_stack, llm):
    llm.default = Step(content="Written while Redis sleeps, " * 8, piece_delay=0.2)
    client = streaming_stack.client("ada")
    posted = streaming_stack.ask("ada")
    thread, box = follow_in_background(client, posted["stream_url"], timeout=90)
    wait_until(lambda: len(streaming_stack.llm.pieces_sent) >= 3, timeout=60, interval=0.05,
               message="the LLM to be writing")
    streaming_stack.redis_freeze()
    try:
        # A new stream still answers within a second: from the database, saying so.
        started = time.monotonic()
        with client.stream("GET", posted["stream_url"]) as response:
            assert response.status_code == 200
            first = next(response.iter_lines())
        assert time.monotonic() - started < ANSWER_WITHIN_SECONDS, first
        thread.join(timeout=60)
        received = box["received"]
        # The open stream said it lost the live text, then gave the saved reply whole.
        assert "notice" in received.names and received.of("notice")[0]["live"] is False
        assert received.names[-1] == "done"
        assert received.text == "Written while Redis sleeps, " * 8
    finally:
        streaming_stack.redis_thaw()
    streaming_stack.wait_healthy(timeout=60)
    assert streaming_stack.saved_reply("ada", posted)["content"] == "Written while Redis sleeps, " * 8


def test_with_postgresql_frozen_open_streams_keep_delivering(streaming_stack, llm):
    llm.default = Step(content="Words keep coming while the database is away. " * 4, piece_delay=0.15)
    client = streaming_stack.client("ada")
    posted = streaming_stack.ask("ada")
    thread, box = follow_in_background(client, posted["stream_url"], timeout=120)
    wait_until(lambda: len(streaming_stack.llm.pieces_sent) >= 2, timeout=60, interval=0.05,
               message="the LLM to be writing")
    streaming_stack.postgres_freeze()
    frozen_at = time.monotonic()
    try:
        time.sleep(2)
    finally:
        streaming_stack.postgres_thaw()
    thread.join(timeout=120)
    received = box["received"]
    during = [at for at, event, _, _ in received.events if event == "delta" and frozen_at < at < frozen_at + 2]
    assert len(during) >= 5  # the text went on arriving while PostgreSQL was frozen
    assert received.names[-1] == "done"
    assert received.text == "Words keep coming while the database is away. " * 4


def test_streams_are_served_from_the_event_loop_not_request_threads(streaming_stack, llm):
    """More open streams than the process has request threads, and a request still gets a thread."""
    llm.default = Step(content="Held.", delay=20)
    posted = streaming_stack.ask("ada")
    token = _token(streaming_stack.client("ada"))
    sockets = [_raw_get(streaming_stack, posted["stream_url"], token) for _ in range(12)]
    try:
        assert all(sock.recv(20).startswith(b"HTTP/1.1 200") for sock in sockets)
        answered = []
        threads = [threading.Thread(target=lambda: answered.append(
            streaming_stack.client("ada").get("/api/health/").status_code)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=5)
        assert answered == [200] * 4
    finally:
        for sock in sockets:
            sock.close()
        streaming_stack.client("ada").post(f"/api/runs/{posted['run']['id']}/cancel/")
