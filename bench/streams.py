"""Streamed replies and event streams through the whole system: web (gunicorn's uvicorn worker, as
`make run` serves it), a chat worker, Redis, PostgreSQL and the fake OpenAI-compatible server,
which streams a piece every --piece-ms after holding its first one --first-ms (a model's time to
first token). Side by side, in interleaved rounds:

1. Time to first token: a client's POST of a message to its first `delta`, against the fake's own
   time to first token for a client that asks it directly. Two ways, in interleaved rounds: back to
   back (each POST as the previous reply ends: a busy service, its processes awake), and after a
   second's quiet (each POST after the fake's own whole answer was read: every process of the
   service asleep, so the first round trip to each costs its waking; on a small virtual machine a
   millisecond or more each).
2. Token gap: each piece, from the moment the fake wrote it to the moment the client read it.
3. A thousand idle streams on one web process: its memory before and after (RSS).
4. The API's latency with no stream open, and with 200 open, on the same process.
5. The API's latency served as it is now (event loop + request threads) against the WSGI app
   under gunicorn's gthread worker (how it was served before streams), on the same data.

    python bench/streams.py [--rounds 5] [--replies 20] [--first-ms 150] [--piece-ms 40] [--idle 1000]
"""

from __future__ import annotations

import os
import resource
import socket
import sys
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DEBUG", "false")

from bench.support import (  # noqa: E402
    bench_options,
    django_with_fake_llm,
    free_port,
    percentile,
    start_web,
    start_worker,
    stop_web,
    stop_worker,
)

fake = django_with_fake_llm()

import httpx  # noqa: E402
import psutil  # noqa: E402
from httpx_sse import connect_sse  # noqa: E402

from tests.support.fake_llm import Step  # noqa: E402

_direct = httpx.Client(timeout=30)
WEB_ENV = {"WEB_CONCURRENCY": "1", "STREAM_MAX_PER_USER": "5000", "STREAM_KEEPALIVE_SECONDS": "15"}
API_PATHS = ("/api/runs/?page_size=20", "/api/chat/sessions/", "/api/health/")


def _token(username: str) -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(username=username)
    return Token.objects.get_or_create(user=user)[0].key


def _ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 0.5) * 1000:.1f} ms, p90 {percentile(values, 0.9) * 1000:.1f} ms"


def _fake_ttft(pieces: int) -> float:
    """The fake's own time to first token, for a client that streams from it directly (read to its
    end, so that none of its pieces are written while the system's reply is measured)."""
    started, first = time.monotonic(), None
    with _direct.stream("POST", f"{fake.url}/v1/chat/completions", json={
            "model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}, timeout=30) as response:
        for line in response.iter_lines():
            if first is None and line.startswith("data:") and '"content": "' in line and '"content": ""' not in line:
                first = time.monotonic() - started
    if first is None:
        raise RuntimeError("the fake answered no token")
    return first


def _reply(client: httpx.Client, session: int, posts: list[float] | None = None) -> tuple[float, list[float]]:
    """POST a message and follow its stream: (time to the first delta, each delta's arrival); the
    POST's own time appended to `posts`."""
    started = time.monotonic()
    posted = client.post(f"/api/chat/sessions/{session}/messages/", json={"content": "How do tides work?"})
    if posts is not None:
        posts.append(time.monotonic() - started)
    assert posted.status_code == 202, posted.text
    arrivals = []
    with connect_sse(client, "GET", posted.json()["stream_url"]) as source:
        for sse in source.iter_sse():
            if sse.event == "delta":
                arrivals.append(time.monotonic())
            if sse.event in ("done", "error", "stopped"):
                assert sse.event == "done", sse.data
                break
    return arrivals[0] - started, arrivals


def _first_round_trips(quiet: float, n: int = 10) -> dict[str, list[float]]:
    """The first round trip to PostgreSQL and to Redis after `quiet` seconds of nothing: what each
    sleeping process of the service costs to wake, which the quiet replies pay at every hop."""
    import redis
    from django.conf import settings
    from django.db import connection

    store = redis.Redis.from_url(settings.REDIS_URL)
    with connection.cursor() as cursor:
        asks = {"PostgreSQL": lambda: cursor.execute("SELECT 1"), "Redis": lambda: store.get("bench:nothing")}
        times: dict[str, list[float]] = {name: [] for name in asks}
        for _ in range(n):
            for name, ask in asks.items():
                time.sleep(quiet)
                started = time.monotonic()
                ask()
                times[name].append(time.monotonic() - started)
    return times


def _api_latencies(client: httpx.Client, n: int) -> list[float]:
    latencies = []
    for i in range(n):
        path = API_PATHS[i % len(API_PATHS)]
        started = time.monotonic()
        assert client.get(path).status_code == 200
        latencies.append(time.monotonic() - started)
    return latencies


def _open_idle(port: int, token: str, paths: list[str]) -> list[socket.socket]:
    sockets = []
    for path in paths:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n\r\n".encode())
        sockets.append(sock)
    for sock in sockets:
        head = sock.recv(64)
        assert head.startswith(b"HTTP/1.1 200"), head
    return sockets


def _web_worker(web) -> psutil.Process:
    [child] = psutil.Process(web.pid).children()
    return child


def main() -> None:
    options = bench_options(rounds=5, replies=20, first_ms=150, piece_ms=40, pieces=25, idle=1000, api_requests=300)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))  # the web inherits it
    fake.default = Step(pieces=[f"word{n} " for n in range(options.pieces)], piece_delay=options.piece_ms / 1000,
                        first_delay=options.first_ms / 1000)

    port, baseline_port = free_port(), free_port()
    worker = start_worker(queues="chat", concurrency=2, include="chat.tasks", name="bench-streams",
                          env={"AI_HEALTH_TTL": "3600"})
    web = start_web(port, name="streams", env=WEB_ENV)
    try:
        token = _token("bench-streams")
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Token {token}"},
                              timeout=httpx.Timeout(10, read=60))
        session = client.post("/api/chat/sessions/", json={"title": "bench"}).json()["id"]
        _reply(client, session)  # the worker's first reply loads what it loads

        # 1 and 2: time to first token, and each token's way to the client.
        gaps: list[float] = []

        def measured_reply(posts: list[float]) -> float:
            with fake._lock:
                fake.pieces_sent.clear()
            ttft, arrivals = _reply(client, session, posts)
            sent = [at for at, _ in fake.pieces_sent]
            if len(sent) == len(arrivals):  # one delta per piece (nothing coalesced)
                gaps.extend(arrived - left for arrived, left in zip(arrivals, sent))
            return ttft

        own, busy, busy_posts, quiet, quiet_posts, quiet_own = [], [], [], [], [], []
        for _ in range(options.rounds):
            own += [_fake_ttft(options.pieces) for _ in range(options.replies)]
            busy += [measured_reply(busy_posts) for _ in range(options.replies)]
            for _ in range(options.replies):
                quiet_own.append(_fake_ttft(options.pieces))
                quiet.append(measured_reply(quiet_posts))
        own += quiet_own
        print(f"time to first token, fake alone:      {_ms(own)}")
        for name, system, posts in (("back to back", busy, busy_posts), ("after a second's quiet", quiet, quiet_posts)):
            print(f"through it all, {name}: {_ms(system)}")
            print(f"  over the fake's own:                {_ms([s - percentile(own, 0.5) for s in system])}")
            print(f"  of which the POST's 202:            {_ms(posts)}")
        for quiet in (0.0, 1.0):
            print(f"first round trip after {quiet:.0f} s of quiet: " + ", ".join(
                f"{name} {_ms(times)}" for name, times in _first_round_trips(quiet).items()))
        print(f"token gap, LLM wrote → client read:   {_ms(gaps)} over {len(gaps)} tokens")

        # 4: the API with and without 200 open streams, interleaved.
        fake.default = Step(content="held", delay=600)
        held = [client.post(f"/api/chat/sessions/{session}/messages/", json={"content": f"held {n}"}).json()
                for n in range(10)]
        paths = [held[n % len(held)]["stream_url"] for n in range(200)]
        without, with_streams = [], []
        for _ in range(options.rounds):
            without += _api_latencies(client, options.api_requests // options.rounds)
            sockets = _open_idle(port, token, paths)
            with_streams += _api_latencies(client, options.api_requests // options.rounds)
            for sock in sockets:
                sock.close()
        print(f"API, no stream open:                  {_ms(without)}")
        print(f"API, 200 streams open:                {_ms(with_streams)}"
              f"  (p50 ratio {percentile(with_streams, 0.5) / percentile(without, 0.5):.2f})")

        # 3: a thousand idle streams on the one web process.
        process = _web_worker(web)
        time.sleep(1)
        before = process.memory_info().rss
        idle_paths = [held[n % len(held)]["stream_url"] for n in range(options.idle)]
        sockets = _open_idle(port, token, idle_paths)
        time.sleep(2)
        after = process.memory_info().rss
        answered = _api_latencies(client, 60)
        print(f"{options.idle} idle streams on one web process: RSS {before / 2**20:.0f} MB → {after / 2**20:.0f} MB "
              f"(+{(after - before) / 2**10 / options.idle:.1f} KB a stream); API meanwhile {_ms(answered)}")
        for sock in sockets:
            sock.close()
        for posted in held:
            client.post(f"/api/runs/{posted['run']['id']}/cancel/")

        # 5: the API as served now against the gthread worker, side by side on the same data.
        baseline = start_web(baseline_port, name="streams-gthread", gthread=True, env=WEB_ENV)
        try:
            other = httpx.Client(base_url=f"http://127.0.0.1:{baseline_port}", headers=client.headers, timeout=10)
            now, before_streams = [], []
            for _ in range(options.rounds):
                now += _api_latencies(client, options.api_requests // options.rounds)
                before_streams += _api_latencies(other, options.api_requests // options.rounds)
            print(f"API under gthread (before streams):   {_ms(before_streams)}")
            print(f"API under uvicorn + request threads:  {_ms(now)}"
                  f"  (p50 ratio {percentile(now, 0.5) / percentile(before_streams, 0.5):.2f})")
            for name, target in (("gthread", other), ("uvicorn", client)):
                print(f"API throughput, 8 clients, {name}: {_throughput(target):.0f} requests/s")
        finally:
            stop_web(baseline)
    finally:
        try:
            stop_web(web)
        finally:
            stop_worker(worker)
            fake.stop()


def _throughput(client: httpx.Client, seconds: float = 4.0, clients: int = 8) -> float:
    done = []
    deadline = time.monotonic() + seconds

    def hammer():
        with httpx.Client(base_url=client.base_url, headers=client.headers, timeout=10) as own:
            n = 0
            while time.monotonic() < deadline:
                assert own.get(API_PATHS[n % len(API_PATHS)]).status_code == 200
                n += 1
            done.append(n)

    threads = [threading.Thread(target=hammer) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / seconds


if __name__ == "__main__":
    main()
