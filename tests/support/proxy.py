"""A TCP forwarder on loopback that a test can cut, freeze and restore: a real outage of a broker or a
database for this process only."""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, *, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(128)
        self.port = self._server.getsockname()[1]
        self._enabled = threading.Event()
        self._enabled.set()
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        threading.Thread(target=self._accept_loop, daemon=True, name="tcp-proxy").start()

    def disable(self) -> None:
        """Refuse new connections and drop the open ones, as a broker that went away."""
        self._enabled.clear()
        with self._lock:
            for sock in list(self._open):
                _close(sock)
            self._open.clear()

    def enable(self) -> None:
        self._enabled.set()

    def freeze(self) -> None:
        """Keep every connection open and answer nothing, new ones included, as a server that hangs."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def _accept_loop(self) -> None:
        while True:
            client, _ = self._server.accept()
            if not self._enabled.is_set():
                _close(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._flowing.wait()
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            _close(client)
            return
        with self._lock:
            self._open.update((client, upstream))
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                _close(sock)
                with self._lock:
                    self._open.discard(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
