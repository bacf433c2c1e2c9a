"""A Pinecone index's data plane on loopback, as the official client speaks it over REST: upsert,
query (cosine, metadata filters with $eq / $in), delete by ids, describe index stats. Like the
real service it wants an Api-Key header and can answer 429 with Retry-After, 5xx, or garbage."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

from tests.support.loopback import JsonHandler


@dataclass
class Failure:
    status: int
    body: bytes = b'{"error": {"code": "UNAVAILABLE", "message": "try again"}}'
    retry_after: str | None = None


def _matches(metadata: dict, where: dict | None) -> bool:
    for field, condition in (where or {}).items():
        value = metadata.get(field)
        if isinstance(condition, dict):
            if "$eq" in condition and value != condition["$eq"]:
                return False
            if "$in" in condition and value not in condition["$in"]:
                return False
        elif value != condition:
            return False
    return True


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


class FakePinecone:
    def __init__(self, *, api_key: str = "pc-test-key", dimension: int = 384):
        self.api_key = api_key
        self.dimension = dimension
        self.namespaces: dict[str, dict[str, dict]] = {}
        self.failures: list[Failure] = []
        self.requests: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(JsonHandler):
            def do_GET(self):
                self.send_json(404, b'{"error": {"code": "NOT_FOUND", "message": "no such route"}}')

            def do_POST(self):
                body = self.read_json()
                if self.headers.get("Api-Key") != fake.api_key:
                    self.send_json(401, b'{"error": {"code": "UNAUTHENTICATED", "message": "Invalid API Key"}}')
                    return
                with fake._lock:
                    fake.requests.append((self.path, body))
                    failure = fake.failures.pop(0) if fake.failures else None
                if failure is not None:
                    headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
                    self.send_json(failure.status, failure.body, headers)
                    return
                handler = {"/vectors/upsert": fake._upsert, "/query": fake._query, "/vectors/delete": fake._delete,
                           "/describe_index_stats": fake._stats}.get(self.path)
                if handler is None:
                    self.send_json(404, b'{"error": {"code": "NOT_FOUND", "message": "no such route"}}')
                    return
                status, answer = handler(body)
                self.send_json(status, answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None, garbage: bool = False):
        body = b"<html>upstream hiccup</html>" if garbage else Failure(status).body
        self.failures.extend(Failure(status, body, retry_after) for _ in range(count))

    def vectors(self, namespace: str) -> dict[str, dict]:
        with self._lock:
            return dict(self.namespaces.get(namespace, {}))

    # --- the data plane ---

    def _upsert(self, body: dict):
        records = body.get("vectors", [])
        for record in records:
            if len(record.get("values", [])) != self.dimension:
                return 400, {"error": {"code": "INVALID_ARGUMENT",
                                       "message": f"Vector dimension {len(record.get('values', []))} does not match "
                                                  f"the dimension of the index {self.dimension}"}}
        with self._lock:
            space = self.namespaces.setdefault(body.get("namespace", ""), {})
            for record in records:
                space[record["id"]] = {"values": record["values"], "metadata": record.get("metadata") or {}}
        return 200, {"upsertedCount": len(records)}

    def _query(self, body: dict):
        with self._lock:
            space = dict(self.namespaces.get(body.get("namespace", ""), {}))
        scored = [(_cosine(body["vector"], record["values"]), vector_id, record)
                  for vector_id, record in space.items() if _matches(record["metadata"], body.get("filter"))]
        scored.sort(key=lambda item: -item[0])
        matches = []
        for score, vector_id, record in scored[:body.get("topK", 10)]:
            match = {"id": vector_id, "score": score, "values": []}
            if body.get("includeMetadata"):
                match["metadata"] = record["metadata"]
            matches.append(match)
        return 200, {"matches": matches, "namespace": body.get("namespace", ""), "usage": {"readUnits": 1}}

    def _delete(self, body: dict):
        with self._lock:
            space = self.namespaces.setdefault(body.get("namespace", ""), {})
            if body.get("deleteAll"):
                space.clear()
            for vector_id in body.get("ids", []):
                space.pop(vector_id, None)
        return 200, {}

    def _stats(self, body: dict):
        with self._lock:
            namespaces = {name or "__default__": {"vectorCount": len(space)} for name, space in self.namespaces.items()}
        return 200, {"namespaces": namespaces, "dimension": self.dimension, "indexFullness": 0.0,
                     "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()), "metric": "cosine",
                     "vectorType": "dense"}
