"""A small OpenAI-compatible server on loopback that can answer, fail, be slow or trickle, on a script.

Like OpenAI itself it serves `/v1/models` and no `/health`, and streams a completion asked with
`"stream": true` as OpenAI does: `data: {chunk}` lines, a role chunk first, the text in pieces with a
pause between them, `finish_reason` on the last, then (with `stream_options.include_usage`) a chunk
of usage with no choices, and `data: [DONE]`. It notes when each piece left, and when a client hung
up on it mid-answer. With `proxy_key` set it checks the key
as LiteLLM's proxy does: a wrong key gets 400 with an `auth_error`, no key a 500 saying so."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from tests.support.loopback import JsonHandler


@dataclass
class Step:
    status: int = 200
    delay: float = 0.0
    content: str = "A fine answer."
    headers: dict = field(default_factory=dict)
    # Seconds between bytes of the answer: a server that never stalls long enough for a read timeout.
    trickle: float = 0.0
    # An error body that repeats the request's Authorization header, as some gateways do.
    echo_auth: bool = False
    # The error's body, where a test needs the server's own words (e.g. vLLM's for an unknown model).
    error_body: dict | None = None
    # Answer only once every party of this barrier has asked: requests that end at the same moment.
    together: threading.Barrier | None = None
    # Streaming (a request with "stream": true): the pieces of the text (default: word by word), the
    # pause before each, whether usage is reported when asked, and a connection dropped after
    # `cut_after` pieces (a server or proxy failing mid-answer). `stream=False`: an older server
    # that ignores the flag and answers the whole completion.
    pieces: list[str] | None = None
    piece_delay: float = 0.0
    # The pause before the first piece instead (a model's time to first token); None: piece_delay.
    first_delay: float | None = None
    usage: bool = True
    stream: bool = True
    cut_after: int | None = None
    # Refuse `stream_options` with a 400, as servers that predate it do.
    refuses_stream_options: bool = False

    def text_pieces(self) -> list[str]:
        if self.pieces is not None:
            return self.pieces
        words = self.content.split(" ")
        return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


class FakeLLM:
    def __init__(self):
        self.script: list[Step] = []
        self.default = Step()
        self.health_status = 200
        self.requests: list[dict] = []
        self.health_requests = 0
        # A prompt containing this text is refused with a 400 (a request the server will never take).
        self.refuse_containing: str | None = None
        self.auth_headers: list[str] = []
        # The one key a LiteLLM-style proxy accepts; None takes any.
        self.proxy_key: str | None = None
        self.embedding_requests: list[dict] = []
        self.embedding_script: list[Step] = []
        self.dimensions = 384
        # Streamed answers: when each piece left (time.monotonic(), its text), and the answers whose
        # client hung up before the end.
        self.pieces_sent: list[tuple[float, str]] = []
        self.hung_up = 0
        self._lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            # As real servers do: each streamed piece leaves at once, not held back for an ACK.
            disable_nagle_algorithm = True

            def key_refused(self) -> bool:
                """LiteLLM's proxy's answers to a key it does not know (400) and to none (500)."""
                if fake.proxy_key is None:
                    return False
                sent = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                if sent == fake.proxy_key:
                    return False
                if sent:
                    self.send_json(400, {"error": {
                        "message": "Authentication Error, Invalid proxy server token passed. Received API Key = "
                                   f"{sent[:3]}...{sent[-4:]}", "type": "auth_error", "param": "None", "code": "400"}})
                else:
                    self.send_json(500, {"error": {"message": "Authentication Error, No api key passed in.",
                                                   "type": "auth_error", "param": "None", "code": "500"}})
                return True

            def do_GET(self):
                with fake._lock:
                    fake.health_requests += 1
                if self.key_refused():
                    return
                if self.path == "/v1/models":
                    body = ({"object": "list", "data": [{"id": "test-model", "object": "model"}]}
                            if fake.health_status == 200 else {"error": {"message": "unavailable"}})
                    self.send_json(fake.health_status, body)
                else:
                    self.send_json(404, {"error": "not found"})

            def do_POST(self):
                body = self.read_json()
                if self.key_refused():
                    with fake._lock:
                        fake.requests.append(body)
                    return
                if self.path == "/v1/embeddings":
                    with fake._lock:
                        fake.embedding_requests.append(body)
                        step = fake.embedding_script.pop(0) if fake.embedding_script else Step()
                    if step.status != 200:
                        self.send_json(step.status, {"error": {"message": f"status {step.status}"}}, step.headers)
                        return
                    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                    data = [{"object": "embedding", "index": i, "embedding": fake.embedding_vector(text)}
                            for i, text in reversed(list(enumerate(inputs)))]
                    self.send_json(200, {"object": "list", "data": data, "model": body.get("model")})
                    return
                if self.path != "/v1/chat/completions":
                    self.send_json(404, {"error": "not found"})
                    return
                with fake._lock:
                    fake.requests.append(body)
                    fake.auth_headers.append(self.headers.get("Authorization", ""))
                    step = fake.script.pop(0) if fake.script else fake.default
                    refused = fake.refuse_containing and fake.refuse_containing in json.dumps(body)
                if refused:
                    self.send_json(400, {"error": {"message": "this request is not accepted"}})
                    return
                if step.together is not None:
                    step.together.wait(timeout=60)
                time.sleep(step.delay)
                if step.status != 200:
                    said = f"status {step.status}"
                    if step.echo_auth:
                        said += f"; you sent Authorization: {self.headers.get('Authorization', '')}"
                    self.send_json(step.status, step.error_body or {"error": {"message": said}}, step.headers)
                    return
                if body.get("stream") and step.stream:
                    if step.refuses_stream_options and "stream_options" in body:
                        self.send_json(400, {"error": {"message": "Unrecognized request argument supplied: "
                                                                  "stream_options", "type": "invalid_request_error"}})
                        return
                    self._stream(body, step)
                    return
                answer = {"id": "cmpl-1", "object": "chat.completion", "model": body.get("model"),
                          "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": step.content}}]}
                if step.trickle:
                    self._trickle(answer, step.trickle)
                    return
                self.send_json(200, answer)

            def _stream(self, body: dict, step: Step):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                pieces = step.text_pieces()

                def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
                    payload = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": int(time.time()),
                               "model": body.get("model"),
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
                    return f"data: {json.dumps(payload)}\n\n".encode()

                try:
                    self.wfile.write(chunk({"role": "assistant", "content": ""}))
                    self.wfile.flush()
                    for number, piece in enumerate(pieces):
                        if step.cut_after is not None and number >= step.cut_after:
                            self.wfile.flush()
                            self.connection.shutdown(2)  # the answer breaks off mid-way
                            return
                        time.sleep(step.first_delay if number == 0 and step.first_delay is not None
                                   else step.piece_delay)
                        last = number == len(pieces) - 1
                        self.wfile.write(chunk({"content": piece}, "stop" if last else None))
                        self.wfile.flush()
                        with fake._lock:
                            fake.pieces_sent.append((time.monotonic(), piece))
                    if step.usage and (body.get("stream_options") or {}).get("include_usage"):
                        usage = {"prompt_tokens": 11 * len(body.get("messages", [])), "completion_tokens": len(pieces),
                                 "total_tokens": 11 * len(body.get("messages", [])) + len(pieces)}
                        payload = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
                                   "model": body.get("model"), "usage": usage}
                        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    with fake._lock:
                        fake.hung_up += 1

            def _trickle(self, body: dict, seconds_per_byte: float):
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    for offset in range(len(payload)):
                        self.wfile.write(payload[offset:offset + 1])
                        self.wfile.flush()
                        time.sleep(seconds_per_byte)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def embedding_vector(self, text: str) -> list[float]:
        """A deterministic unit vector per text (the same text always maps to the same vector)."""
        import hashlib
        import math

        seed = hashlib.sha256(text.encode()).digest()
        raw = [((seed[i % 32] + i * 7) % 255) / 255.0 - 0.5 for i in range(self.dimensions)]
        norm = math.sqrt(sum(x * x for x in raw))
        return [x / norm for x in raw]

    def reset(self):
        with self._lock:
            self.script, self.default, self.health_status = [], Step(), 200
            self.refuse_containing, self.proxy_key = None, None
            self.requests, self.health_requests, self.auth_headers = [], 0, []
            self.embedding_requests, self.embedding_script, self.dimensions = [], [], 384
            self.pieces_sent, self.hung_up = [], 0

    def stop(self):
        self.server.shutdown()
