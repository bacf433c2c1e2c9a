"""`make run` on servers of its own, its LLM server the tests' fake, and SSE read as clients read it
(httpx-sse): what the stream tests of several apps share (tests/conftest.py's `streaming_stack`)."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field

import httpx
from httpx_sse import connect_sse

from tests.support.fake_llm import FakeLLM
from tests.support.stack import OwnStack

# Short enough for a test, as a deployment would never set them: a lost worker's run is taken over
# within seconds, retries come after a second, keep-alives every second, a stalled client is dropped
# after two seconds of not reading.
STREAMING_STACK_ENV = {
    "AI_API_KEY": "sk-stream-test", "AI_TIMEOUT": "20", "AI_CONNECT_TIMEOUT": "2", "AI_RETRY_DELAYS": "1,1,1",
    "AI_HEALTH_TTL": "30", "RUN_HEARTBEAT_SECONDS": "1", "RUN_HEARTBEAT_TIMEOUT_SECONDS": "4",
    "WATCHDOG_INTERVAL_SECONDS": "2", "STREAM_KEEPALIVE_SECONDS": "1", "STREAM_SEND_TIMEOUT_SECONDS": "2",
    "STREAM_BUFFER_EVENTS": "50", "STREAM_MAX_PER_USER": "20", "REDIS_TIMEOUT_SECONDS": "0.2",
    "WORKER_BROKER_TIMEOUT_SECONDS": "2", "WORKER_STOP_GRACE_SECONDS": "2", "WEB_CONCURRENCY": "1",
}


class StreamingStack(OwnStack):
    def __init__(self, tmp_path, llm: FakeLLM, **env: str):
        super().__init__(tmp_path, AI_SERVER_URL=llm.url, **STREAMING_STACK_ENV, **env)
        self.llm = llm
        self._clients: dict[str, httpx.Client] = {}

    def client(self, username: str) -> httpx.Client:
        """An API client of `username` (made once), with a token; reads may wait (streams)."""
        return self.clients(username)[0]

    def clients(self, *usernames: str) -> list[httpx.Client]:
        """A client for each user, the tokens of those new to this stack made by one command."""
        missing = [name for name in usernames if name not in self._clients]
        if missing:
            for line in self.manage("create_api_token", *missing).strip().splitlines():
                username, token = re.search(r"(\S+); API token: (\S+)$", line).groups()
                self._clients[username] = httpx.Client(base_url=self.base, headers={"Authorization": f"Token {token}"},
                                                       timeout=httpx.Timeout(5, read=30))
        return [self._clients[name] for name in usernames]

    def ask(self, username: str, question: str = "Tell me something.") -> dict:
        """A new session and a question in it: the 202's body."""
        client = self.client(username)
        session = client.post("/api/chat/sessions/", json={}).json()["id"]
        response = client.post(f"/api/chat/sessions/{session}/messages/", json={"content": question})
        assert response.status_code == 202, response.text
        return response.json()

    def saved_reply(self, username: str, posted: dict) -> dict | None:
        messages = self.client(username).get(f"/api/chat/sessions/{posted['message']['session']}/messages/").json()
        replies = [m for m in messages["results"] if m["role"] == "assistant"]
        assert len(replies) <= 1, replies
        return replies[0] if replies else None


@dataclass
class Received:
    """What one SSE client received: each event with the moment it arrived."""

    events: list[tuple[float, str, str | None, dict]] = field(default_factory=list)
    status: int | None = None
    error: BaseException | None = None
    done = None

    def of(self, name: str) -> list[dict]:
        return [data for _, event, _, data in self.events if event == name]

    @property
    def names(self) -> list[str]:
        return [event for _, event, _, _ in self.events]

    @property
    def text(self) -> str:
        """The reply as a client shows it: deltas joined, what came before a reset discarded."""
        shown = ""
        for _, event, _, data in self.events:
            if event == "reset":
                shown = ""
            elif event == "delta":
                shown += data["delta"]
        return shown

    @property
    def last_id(self) -> str | None:
        ids = [event_id for _, _, event_id, _ in self.events if event_id]
        return ids[-1] if ids else None


def follow(client: httpx.Client, url: str, *, last_event_id: str | None = None, stop_after=None,
           timeout: float = 60) -> Received:
    """Read the stream at `url` until the server closes it (or `stop_after(received)` says so, or
    `timeout`): what an SSE client library gets."""
    received = Received()
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    deadline = time.monotonic() + timeout
    with connect_sse(client, "GET", url, headers=headers) as source:
        received.status = source.response.status_code
        if received.status != 200:
            source.response.read()
            received.done = source.response.json() if source.response.content else None
            return received
        for sse in source.iter_sse():
            if not sse.data:  # the `retry:` field alone: not an event (the spec dispatches none)
                continue
            received.events.append((time.monotonic(), sse.event, sse.id or None, json.loads(sse.data)))
            if (stop_after and stop_after(received)) or time.monotonic() > deadline:
                break
    return received


def follow_in_background(client: httpx.Client, url: str, **options) -> tuple[threading.Thread, Received]:
    """`follow` in a thread; join the thread for what it received."""
    box: dict = {}

    def run():
        try:
            box["received"] = follow(client, url, **options)
        except BaseException as exc:  # the test asserts on it
            box["received"] = Received(error=exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.received = box  # type: ignore[attr-defined]
    return thread, box
