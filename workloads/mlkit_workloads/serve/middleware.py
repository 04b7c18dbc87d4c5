"""Two pure-ASGI wrappers (cheaper than BaseHTTPMiddleware on the hot path).

* :class:`BodyLimit` answers 413 before the app sees a body over the limit, whether the client
  sent a Content-Length or streamed it chunked (then it is buffered up to the limit, no further).
* :class:`StatusCounter` counts responses by route family and status code for ``/metrics``.
* :class:`RejectedLog` sends every rejected ``/v1/predict`` (any status but 200, including the 413s
  :class:`BodyLimit` answers itself) to the inference log: status, error code, request id, the group
  when the error names one; never the body (it may be the very thing that was wrong).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import uuid
from collections import Counter
from typing import Any, Callable


def _error(status: int, code: str, message: str) -> tuple[dict, bytes]:
    body = json.dumps({"error": {"status": status, "code": code, "message": message}}).encode()
    start = {"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]}
    return start, body


class BodyLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def _reject(self, send, received: int | None) -> None:
        what = f"{received} bytes" if received is not None else "more"
        start, body = _error(413, "body_too_large", f"request body is {what}; the limit is {self.max_bytes} bytes")
        await send(start)
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                n = -1
            if n > self.max_bytes:
                return await self._reject(send, n)
            if n >= 0:
                return await self.app(scope, receive, send)
        # No (valid) length: read the stream ourselves, stop at the limit, replay to the app.
        chunks, total = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            total += len(msg.get("body", b""))
            if total > self.max_bytes:
                return await self._reject(send, None)
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class StatusCounts:
    """Responses by route family and status code (shared by the middleware and ``/metrics``)."""

    FAMILIES = ("/v1/predict", "/v1/models", "/healthz", "/readyz", "/metrics")

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()

    def family(self, path: str) -> str:
        for f in self.FAMILIES:
            if path == f or path.startswith(f + "/"):
                return f
        return "other"  # bounded label set: raw paths would let a client grow it without limit

    def add(self, family: str, status: int) -> None:
        with self._lock:
            self._counts[(family, status)] += 1

    def snapshot(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._counts)


class StatusCounter:
    def __init__(self, app, counts: StatusCounts):
        self.app, self.counts = app, counts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        family = self.counts.family(scope["path"])

        async def counting_send(msg):
            if msg["type"] == "http.response.start":
                self.counts.add(family, msg["status"])
            await send(msg)

        return await self.app(scope, receive, counting_send)


REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(headers: dict[bytes, bytes] | None, given: str = "") -> str:
    """The client's X-Request-ID when it is sane, else a new one (same rule for served and rejected)."""
    rid = given or (headers or {}).get(b"x-request-id", b"").decode("latin-1")
    return rid if REQUEST_ID.fullmatch(rid) else uuid.uuid4().hex


class RejectedLog:
    """``offer(event)`` for each non-200 answer of ``path``; ``model()`` -> (name, version) being served."""

    def __init__(self, app, offer: Callable[[dict[str, Any]], Any], env: str,
                 model: Callable[[], tuple[str, str]], path: str = "/v1/predict"):
        self.app, self.offer, self.env, self.model, self.path = app, offer, env, model, path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != self.path:
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 200, "body": b"", "rid": ""}

        async def watching_send(msg):
            if msg["type"] == "http.response.start":
                state["status"] = msg["status"]
                state["rid"] = dict(msg.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
            elif msg["type"] == "http.response.body" and state["status"] != 200 and len(state["body"]) < 4096:
                state["body"] += msg.get("body", b"")
                if not msg.get("more_body"):
                    self._log(scope, state, started)
            await send(msg)

        return await self.app(scope, receive, watching_send)

    def _log(self, scope, state: dict[str, Any], started: float) -> None:
        try:
            error = json.loads(state["body"] or b"{}").get("error") or {}
        except ValueError:
            error = {}
        name, version = self.model()
        group = error.get("group") if isinstance(error.get("group"), dict) else {}
        self.offer({"request_id": request_id(dict(scope["headers"]), state["rid"]),
                    "ts": dt.datetime.now(dt.timezone.utc).isoformat(), "env": self.env, "model_name": name,
                    "model_version": version, "group_key": "|".join(str(v) for v in group.values()),
                    "group": group, "inputs": [], "outputs": [], "latency_ms": 1000 * (time.perf_counter() - started),
                    "status": state["status"], "error": str(error.get("code") or "http_error")})
