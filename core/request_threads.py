"""Django's WSGI app in a pool of request threads, under the web process's event loop (project/asgi.py).

a2wsgi's bridge hands every message of a response across threads and waits for each (the start,
each body chunk, the end): three waits on the event loop per request, measured at about a tenth
of an API request's time (bench/streams.py). Here a request with a small body is read first, the
app runs in a request thread start to end, and its answer comes back in one hand-over. A large
upload, and a response that grows past RESPONSE_GATHER_BYTES (a file download), go through
a2wsgi, chunk by chunk, so neither is ever held whole in memory.

Either way the app runs in the request thread's own context, never in a copy of the event loop's:
Django keeps each thread's database connection in a context variable, and a fresh copy per request
would open a fresh connection per request (and leave the last one to the garbage collector).
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from a2wsgi.wsgi import Body, WSGIResponder, build_environ

# A request body up to this is read before the app runs (JSON, forms, small files); a larger one
# is streamed to it.
REQUEST_READ_BYTES = 256 * 1024
# A response up to this is gathered and sent at once; past it, sent as it is produced.
RESPONSE_GATHER_BYTES = 1024 * 1024


def _declared_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _StreamedResponder(WSGIResponder):
    """a2wsgi's, with the app run in the request thread's own context (see above)."""

    async def __call__(self, scope, receive, send) -> None:
        environ = build_environ(scope, Body(self.loop, receive))
        sender = self.loop.create_task(self.sender(send))
        try:
            await self.loop.run_in_executor(self.executor, self.wsgi, environ, self.start_response)
            await self.send_queue.put(None)
            await sender
            if self.exc_info is not None:
                raise self.exc_info[0].with_traceback(self.exc_info[1], self.exc_info[2])
        finally:
            if not sender.done():
                sender.cancel()


class RequestThreads:
    # Messages of a streamed answer waiting for the event loop to send them (a2wsgi's default).
    SEND_QUEUE = 10

    def __init__(self, app: Callable, *, threads: int):
        self.app = app
        # `threads` request threads in all, each with its own connections.
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="request")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        length = _declared_length(scope)
        chunked = any(name == b"transfer-encoding" for name, _ in scope.get("headers", ()))
        if chunked or (length or 0) > REQUEST_READ_BYTES:
            return await _StreamedResponder(self.app, self.executor, self.SEND_QUEUE)(scope, receive, send)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        loop = asyncio.get_running_loop()
        environ = build_environ(scope, io.BytesIO(bytes(body)))
        answer = await loop.run_in_executor(self.executor, self._answer, environ, loop, send)
        if answer is not None:
            status, headers, content = answer
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})

    def _answer(self, environ: dict, loop: asyncio.AbstractEventLoop, send) -> tuple[int, list, bytes] | None:
        """In a request thread: the app's whole answer, or None once it was sent as produced."""
        started: dict[str, Any] = {}
        gathered: list[bytes] = []

        def start_response(status: str, headers: list, exc_info=None):
            if exc_info and started.get("sent"):
                raise exc_info[1].with_traceback(exc_info[2])
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [(name.strip().lower().encode("latin1"), value.strip().encode("latin1"))
                                  for name, value in headers]
            return gathered.append

        def send_here(message: dict) -> None:
            asyncio.run_coroutine_threadsafe(send(message), loop).result()

        iterable = self.app(environ, start_response)
        try:
            size = sum(len(chunk) for chunk in gathered)
            chunks = iter(iterable)
            for chunk in chunks:
                gathered.append(chunk)
                size += len(chunk)
                if size > RESPONSE_GATHER_BYTES:
                    started["sent"] = True
                    send_here({"type": "http.response.start", "status": started["status"],
                               "headers": started["headers"]})
                    send_here({"type": "http.response.body", "body": b"".join(gathered), "more_body": True})
                    for rest in chunks:
                        send_here({"type": "http.response.body", "body": rest, "more_body": True})
                    send_here({"type": "http.response.body", "body": b""})
                    return None
        finally:
            getattr(iterable, "close", lambda: None)()
        return started["status"], started["headers"], b"".join(gathered)


async def _lifespan(receive, send) -> None:
    """Nothing to start or stop: the process's servers are connected on first use."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
