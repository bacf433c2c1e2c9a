"""Chat reply latency against a bare Celery task making the same HTTP call, in one run.

Both call the same fake OpenAI-compatible server on loopback with a fixed delay; the figure is the
end-to-end latency minus that delay: p50 and p99, tracked reply against bare task.

    python bench/chat_overhead.py [--replies 50] [--delay 0.2]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
from bench.support import bench_options, django_with_fake_llm  # noqa: E402

FAKE = django_with_fake_llm()

from django.contrib.auth import get_user_model  # noqa: E402

from bench.support import percentile, start_worker, stop_worker  # noqa: E402
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
    options = bench_options(replies=50, delay=0.2)
    FAKE.default = Step(delay=options.delay, content="The harbour answer.")

    worker = start_worker(queues=BENCH_QUEUE, concurrency=1, include="bench.noop_tasks", name="bench-chat",
                          env={"AI_SERVER_URL": FAKE.url})
    try:
        tracked_latencies(3, options.delay), bare_latencies(3, options.delay)  # warm both paths (model load)
        tracked = tracked_latencies(options.replies, options.delay)
        bare = bare_latencies(options.replies, options.delay)
    finally:
        stop_worker(worker)
        FAKE.stop()
    t50, b50 = statistics.median(tracked), statistics.median(bare)
    print(f"replies: {options.replies}, fake server delay {options.delay * 1000:.0f} ms")
    print(f"bare Celery task + HTTP call: overhead p50 {b50:6.1f} ms, p99 {percentile(bare, 0.99):6.1f} ms")
    print(f"tracked chat reply:           overhead p50 {t50:6.1f} ms, p99 {percentile(tracked, 0.99):6.1f} ms")
    print(f"reply overhead beyond bare:   p50 {t50 - b50:6.1f} ms  (target <= 50 ms)")


if __name__ == "__main__":
    main()
