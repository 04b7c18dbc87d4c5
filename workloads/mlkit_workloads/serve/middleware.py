"""Two pure-ASGI wrappers (cheaper than BaseHTTPMiddleware on the hot path).

* :class:`BodyLimit` answers 413 before the app sees a body over the limit, whether the client
  sent a Content-Length or streamed it chunked (then it is buffered up to the limit, no further).
* :class:`Observe`: request id, metrics per route and model, and the inference events of
  rejected predictions.
"""

from __future__ import annotations

import contextvars
import json
import random
import re
import time
from typing import Any, Callable

from ..inference_event import inference_event


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


REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The request id of the request being answered, for log lines (telemetry.JsonLines) and handlers.
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("mlkit_request_id", default="")


def request_id(headers: dict[bytes, bytes] | None, given: str = "") -> str:
    """The client's X-Request-ID when it is sane, else a new one (same rule for served and rejected)."""
    rid = given or (headers or {}).get(b"x-request-id", b"").decode("latin-1")
    # 128 random bits as 32 hex digits (uuid4().hex's shape). Not uuid4: it reads os.urandom, a system
    # call per request (~0.1 ms measured under load); an id needs to be unique, not unguessable.
    return rid if rid and REQUEST_ID.fullmatch(rid) else f"{random.getrandbits(128):032x}"


class Routes:
    """Bounded labels for a path: (route template, served model or ""). Raw paths or asked-for model
    names as labels would let a client grow the metric set without limit."""

    def __init__(self, models: list[str], legacy_model: str | None):
        self.models, self.legacy = set(models), legacy_model

    def __call__(self, path: str) -> tuple[str, str]:
        if path == "/v1/predict":
            return path, self.legacy or "unknown"
        if path.startswith("/v1/models"):
            parts = path[len("/v1/models"):].strip("/").split("/") if path != "/v1/models" else []
            if not parts:
                return "/v1/models", ""
            model = parts[0] if parts[0] in self.models else "unknown"
            if len(parts) == 2 and parts[1] == "predict":
                return "/v1/models/{name}/predict", model
            if len(parts) >= 2 and parts[1] == "groups":
                return "/v1/models/{name}/groups/{group}", model
            if len(parts) == 1 and model != "unknown":
                return "/v1/models/{name}", model
            return "/v1/models/{group}", self.legacy or "unknown"  # the forecast's group info, as before
        if path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            return path, ""
        return "other", ""


class Observe:
    """Per request: the request id (the client's X-Request-ID when sane, echoed on every response),
    the route's count and latency, and for a rejected
    prediction (any status but 200, including the 413s BodyLimit answers itself) an inference event
    with its status and error code: never the body (it may be the very thing that was wrong).
    ``model_of(job)`` -> (full name, version) being served, for those events."""

    def __init__(self, app, routes: Routes, metrics=None, offer: Callable[[dict[str, Any]], Any] | None = None,
                 env: str = "", model_of: Callable[[str], tuple[str, str]] | None = None):
        self.app, self.routes, self.metrics = app, routes, metrics
        self.offer, self.env, self.model_of = offer, env, model_of

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        rid = request_id(dict(scope["headers"]))
        scope["mlkit.request_id"] = rid
        token = current_request_id.set(rid)
        route, model = self.routes(scope["path"])
        predicting = route.endswith("predict") and model != "unknown"
        state: dict[str, Any] = {"status": 500, "body": b""}

        async def observing_send(msg):
            if msg["type"] == "http.response.start":
                state["status"] = msg["status"]
                msg = {**msg, "headers": [*msg.get("headers", []), (b"x-request-id", rid.encode())]}
            elif (msg["type"] == "http.response.body" and state["status"] != 200 and predicting
                  and len(state["body"]) < 4096):
                state["body"] += msg.get("body", b"")
            await send(msg)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            current_request_id.reset(token)
            status = state["status"]
            if self.metrics is not None:
                self.metrics.observe(route, model, status, time.perf_counter() - started)
            error = _error_of(state["body"]) if status != 200 and predicting else {}
            if error and self.offer is not None and self.model_of is not None:
                name, version = self.model_of(model)
                group = error.get("group") if isinstance(error.get("group"), dict) else {}
                self.offer(inference_event(rid, self.env, name, version, 1000 * (time.perf_counter() - started),
                                           group=group, status=status, error=str(error.get("code") or "http_error")))


def _error_of(body: bytes) -> dict[str, Any]:
    try:
        error = json.loads(body or b"{}").get("error")
    except (ValueError, AttributeError):
        return {"code": "http_error"}
    return error if isinstance(error, dict) else {"code": "http_error"}
