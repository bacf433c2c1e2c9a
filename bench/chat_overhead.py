"""Chat reply latency against a bare Celery task making the same HTTP call, in one run.

All call the same fake OpenAI-compatible server on loopback with a fixed delay; each figure is the
latency minus that delay, p50 and p99:

- a bare Celery task making the call, from its publish until it has run;
- a tracked reply, from `message_post` in this process until the reply is stored;
- a tracked reply through the API: `POST /api/chat/sessions/{id}/messages/` to gunicorn (as `make run`
  serves it), from its 202 until the reply is readable (its row committed).

    python bench/chat_overhead.py [--replies 50] [--delay 0.2]
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from bench.support import bench_options, django_with_fake_llm  # noqa: E402

FAKE = django_with_fake_llm()

import httpx  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402

from bench.support import free_port, percentile, start_web, start_worker, stop_web, stop_worker  # noqa: E402
from chat.models import ChatSession, Message  # noqa: E402
from chat.services import message_post  # noqa: E402
from project.celery import app  # noqa: E402
from tests.support.fake_llm import Step  # noqa: E402

BENCH_QUEUE = "chat"


def tracked_latencies(n: int, delay: float) -> list[float]:
    user, _ = get_user_model().objects.get_or_create(username="bench-chat")
    session = ChatSession.objects.create(owner=user)
    latencies = []
    for i in range(n):
        started = time.perf_counter()
        message = message_post(session=session, content=f"Question number {i} about the harbour?")
        while not Message.objects.filter(reply_to=message, role="assistant").exists():
            time.sleep(0.002)
        latencies.append((time.perf_counter() - started - delay) * 1000)
    session.delete()
    return latencies


def api_latencies(n: int, delay: float, base: str) -> tuple[list[float], list[float]]:
    """(from the 202 to the reply readable, beyond the LLM's delay; the POST's own answer time), in ms."""
    from rest_framework.authtoken.models import Token

    user, _ = get_user_model().objects.get_or_create(username="bench-chat")
    client = httpx.Client(base_url=base, timeout=30,
                          headers={"Authorization": f"Token {Token.objects.get_or_create(user=user)[0].key}"})
    session_id = client.post("/api/chat/sessions/", json={"title": "bench"}).json()["id"]
    latencies, answers = [], []
    for i in range(n):
        posted = time.perf_counter()
        response = client.post(f"/api/chat/sessions/{session_id}/messages/",
                               json={"content": f"Question number {i} about the harbour?"})
        accepted = time.perf_counter()
        assert response.status_code == 202, response.text
        message_id = response.json()["message"]["id"]
        while not Message.objects.filter(reply_to_id=message_id, role="assistant").exists():
            time.sleep(0.002)
        latencies.append((time.perf_counter() - accepted - delay) * 1000)
        answers.append((accepted - posted) * 1000)
    ChatSession.objects.filter(id=session_id).delete()
    return latencies, answers


def bare_latencies(n: int, delay: float) -> list[float]:
    client = app.connection_for_write().default_channel.client
    latencies = []
    for i in range(n):
        key = f"bench:chat:bare:{i}"
        client.delete(key)
        started = time.perf_counter()
        app.send_task("bench.bare_completion", kwargs={"url": FAKE.url, "key": key}, queue=BENCH_QUEUE)
        while not client.exists(key):
            time.sleep(0.002)
        latencies.append((time.perf_counter() - started - delay) * 1000)
    return latencies


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request, otherwise
    options = bench_options(replies=50, delay=0.2)
    FAKE.default = Step(delay=options.delay, content="The harbour answer.")

    worker = start_worker(queues=BENCH_QUEUE, concurrency=1, include="bench.noop_tasks", name="bench-chat",
                          env={"AI_SERVER_URL": FAKE.url})
    port = free_port()
    web = start_web(port, name="chat")
    base = f"http://127.0.0.1:{port}"
    try:
        # Warm every path (the worker's and web processes' first calls).
        tracked_latencies(3, options.delay), bare_latencies(3, options.delay), api_latencies(4, options.delay, base)
        tracked = tracked_latencies(options.replies, options.delay)
        bare = bare_latencies(options.replies, options.delay)
        through_api, answers = api_latencies(options.replies, options.delay, base)
    finally:
        stop_web(web)
        stop_worker(worker)
        FAKE.stop()
    t50, b50 = statistics.median(tracked), statistics.median(bare)
    print(f"replies: {options.replies}, fake server delay {options.delay * 1000:.0f} ms")
    print(f"bare Celery task + HTTP call: overhead p50 {b50:6.1f} ms, p99 {percentile(bare, 0.99):6.1f} ms")
    print(f"tracked chat reply:           overhead p50 {t50:6.1f} ms, p99 {percentile(tracked, 0.99):6.1f} ms")
    print(f"reply overhead beyond bare:   p50 {t50 - b50:6.1f} ms")
    a50 = statistics.median(through_api)
    print(f"through the API, 202 to reply readable: p50 {a50:6.1f} ms, p99 {percentile(through_api, 0.99):6.1f} ms "
          f"beyond the LLM's {options.delay * 1000:.0f} ms (target <= 50 ms: {'met' if a50 <= 50 else 'NOT met'}); "
          f"the POST answered 202 in p50 {statistics.median(answers):.1f} ms")


if __name__ == "__main__":
    main()
