"""The FastAPI app: predict, model info, health, readiness, metrics. Built by :func:`create_app`.

Errors always have one shape, ``{"error": {status, code, message, field?, group?}}``; the message
names the field (422) or the group (404/503). Routes are plain ``def``: the CPU work runs in the
thread pool, so a cold group load never stalls the event loop for other groups' requests.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime, and the
# request model is generated (S.PredictRequest), so it must be a real object, not a string.
import datetime as dt
import logging
import math
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..forecast.meta_model import UnknownGroup, canonical
from .auth import ApiKeys
from .inference_log import InferenceLogger
from .metrics import render_metrics
from .middleware import BodyLimit, RejectedLog, StatusCounter, StatusCounts, request_id
from .schema import ErrorResponse, ModelInfo, Schemas, example_request
from .service import GroupLoadFailed, ModelService, NotReady, RowError
from .settings import ServingSettings

log = logging.getLogger("mlkit.serve")
GROUP_PATH = r"^[^/]+(/[^/]+){%d}$"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 group: dict[str, str] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.group = status, code, message, field, group
        self.headers = headers


def _error_response(e: ApiError) -> JSONResponse:
    body: dict[str, Any] = {"status": e.status, "code": e.code, "message": e.message}
    if e.field is not None:
        body["field"] = e.field
    if e.group is not None:
        body["group"] = e.group
    return JSONResponse({"error": body}, status_code=e.status, headers=e.headers)


def _field(loc: tuple) -> str:
    return ".".join(str(p) for p in loc)


def _finite(v: Any) -> Any:
    return v if not isinstance(v, float) or math.isfinite(v) else None


ERRORS = {code: {"model": ErrorResponse, "description": desc} for code, desc in (
    (401, "missing or invalid bearer token"), (404, "unknown group (the message names it)"),
    (413, "body or batch over the configured limit"), (415, "the body is not sent as application/json"),
    (422, "malformed body, wrong type, or a row the model cannot forecast (names the field and row)"),
    (503, "not ready, or this group's model failed to load (others keep serving)"))}


def create_app(service: ModelService, schemas: Schemas, settings: ServingSettings, *, env: str, alias: str,
               auth: ApiKeys | None, logger: InferenceLogger | None) -> FastAPI:
    """``auth=None`` means open (local only; the caller says so at start)."""
    S = schemas
    counts = StatusCounts()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        service.stop()
        if logger is not None:
            counts = logger.close()
            log.info("inference log closed: %s", counts)

    app = FastAPI(title="mlkit scoring service", version="1", lifespan=lifespan,
                  description=("Per-group forecast models served from the registry alias "
                               f"`@{alias}`. Group models load on first use into a bounded LRU."))
    bearer = HTTPBearer(auto_error=False, description="an API key from the environment's Key Vault")

    def authorized(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if auth is None:
            return
        if not auth.check(creds.credentials if creds else None):
            raise ApiError(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer <key>)",
                           headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorized)] if auth is not None else []
    responses = {c: ERRORS[c] for c in ERRORS if c != 401 or auth is not None}

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return _error_response(e)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        # Framework errors in our one error shape. A body FastAPI cannot even decode is a 422 like bad JSON.
        if e.status_code == 400 and "parsing the body" in str(e.detail):
            return _error_response(ApiError(422, "invalid_request", "body: the body is not valid JSON", field="body"))
        code = {404: "not_found", 405: "method_not_allowed"}.get(e.status_code, "http_error")
        return _error_response(ApiError(e.status_code, code, str(e.detail), headers=getattr(e, "headers", None)))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError):
        if request.method == "POST" and not _is_json(request.headers.get("content-type")):
            # FastAPI reads a non-JSON body as bytes and reports "Input should be a valid dictionary".
            given = request.headers.get("content-type", "")[:80]
            return _error_response(ApiError(415, "unsupported_media_type", f"content-type {given!r}: send the "
                                            "body as application/json", field="content-type"))
        errors = e.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = _field(first["loc"])
        msg = first["msg"] if first.get("type") != "json_invalid" else "the body is not valid JSON"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return _error_response(ApiError(422, "invalid_request", f"{field}: {msg}{more}", field=field))

    def _current():
        try:
            return service.current
        except NotReady as e:
            raise ApiError(503, "not_ready", str(e), headers={"Retry-After": "5"}) from None

    def _named(key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(S.keys, key))

    def _describe(key: tuple[str, ...]) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in zip(S.keys, key))

    @app.post("/v1/predict", response_model=S.PredictResponse, responses=responses, dependencies=guarded,
              summary="Forecast one or many future periods of one group, with prediction intervals",
              description=("Rows: periods 1 to `horizon` after the group's last trained period (see "
                           "`GET /v1/models/{group}`: `last_ts`, `frequency`, `horizon`). A group whose model uses "
                           "features (model_type `xgboost`) needs their values in a row for every period from the "
                           "first one after its history to the furthest one asked. A row that cannot be forecast "
                           "is a 422 naming the row."))
    async def predict(body: S.PredictRequest, request: Request):  # type: ignore[valid-type]
        started = time.perf_counter()
        rid = request_id(None, request.headers.get("x-request-id", ""))
        if len(body.rows) > settings.max_batch_rows:
            raise ApiError(413, "batch_too_large",
                           f"{len(body.rows)} rows; the limit is {settings.max_batch_rows} per request", field="rows")
        lv = _current()
        key = S.group_key(body)
        rows = S.model_input(body)
        try:
            # A loaded group whose answer needs no forecast run (see is_loaded) answers inline; anything
            # else (a load from disk, a forecast with features) runs in the thread pool, so other groups'
            # requests keep flowing meanwhile.
            if service.is_loaded(lv, key):
                fc = service.predict(lv, key, rows)
            else:
                fc = await run_in_threadpool(service.predict, lv, key, rows)
        except UnknownGroup:
            raise ApiError(404, "unknown_group", f"no model for group {_describe(key)} in {lv.name} version "
                           f"{lv.version}", group=_named(key)) from None
        except GroupLoadFailed as e:
            raise ApiError(503, "group_unavailable", f"group {_describe(key)}: {e.reason}",
                           group=_named(key), headers={"Retry-After": "30"}) from None
        except RowError as e:
            field = "body.rows" if e.row is None else f"body.rows.{e.row}.{e.field}"
            raise ApiError(422, "cannot_forecast", f"{field}: {e.message}", field=field, group=_named(key)) from None
        out = [_finite(float(p)) for p in fc.pop("prediction")]
        intervals = {band: [_finite(float(v)) for v in values] for band, values in fc.items()}
        group = _named(key)
        if logger is not None:
            logger.offer({"request_id": rid, "ts": dt.datetime.now(dt.timezone.utc).isoformat(), "env": env,
                          "model_name": lv.name, "model_version": lv.version, "group_key": canonical(key),
                          "group": group, "inputs": S.rows_json(body), "outputs": out,
                          "latency_ms": 1000 * (time.perf_counter() - started)})
        # Returned as a response (the model above documents it): skips re-validating our own output.
        return JSONResponse({"request_id": rid, "model": {"name": lv.name, "version": lv.version},
                             "group": group, "model_type": lv.models.group_info(key).get("model_type"),
                             "predictions": out, "intervals": intervals}, headers={"X-Request-ID": rid})

    @app.get("/v1/models/{group:path}", response_model=ModelInfo, responses=responses, dependencies=guarded,
             summary=f"Model type, last trained period, frequency, horizon and backtest metrics of one group "
                     f"({'/'.join(S.keys)})")
    def model_info(group: str = Path(pattern=GROUP_PATH % (len(S.keys) - 1),
                                     description=f"the group's keys joined by '/': {'/'.join(S.keys)}",
                                     examples=["/".join(S.example_group)])):
        parts = group.split("/")
        if len(parts) != len(S.keys) or not all(parts):
            raise ApiError(422, "invalid_request", f"group: expected {len(S.keys)} non-empty part(s) "
                           f"{'/'.join('<' + k + '>' for k in S.keys)}, got {group!r}", field="group")
        key = tuple(parts)
        lv = _current()
        try:
            info = lv.models.group_info(key)
        except UnknownGroup:
            raise ApiError(404, "unknown_group", f"no model for group {_describe(key)} in {lv.name} version "
                           f"{lv.version}", group=_named(key)) from None
        metrics = {k: _finite(float(v)) if v is not None else None for k, v in (info.get("metrics") or {}).items()}
        spec = lv.models.spec
        return ModelInfo(name=lv.name, version=lv.version, alias=alias, group=_named(key), status=info.get("status"),
                         model_type=info.get("model_type"), first_ts=info.get("first_ts"), last_ts=info.get("last_ts"),
                         frequency=spec.get("frequency"), horizon=spec.get("horizon"),
                         season_length=spec.get("season_length"), backtest_windows=spec.get("backtest_windows"),
                         levels=spec.get("levels") or [],
                         trained_at=str(info["trained_at"]) if info.get("trained_at") else None,
                         run_id=info.get("run_id"), metrics=metrics, model_bytes=info.get("bytes"))

    @app.get("/healthz", summary="Liveness: the process answers")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: a model version is loaded (and API keys, when required)",
             responses={503: {"model": ErrorResponse, "description": "not ready; the message says why"}})
    def readyz():
        problems = [] if service.ready else [service.status]
        if auth is not None and not auth.ready:
            problems.append(auth.error or "API keys not loaded yet")
        if problems:
            raise ApiError(503, "not_ready", "; ".join(problems), headers={"Retry-After": "5"})
        lv = service.current
        return {"status": "ready", "model": {"name": lv.name, "version": lv.version}, "alias": alias}

    @app.get("/metrics", response_class=PlainTextResponse, dependencies=guarded,
             responses={c: ERRORS[c] for c in (401,) if auth is not None},
             summary="Prometheus text: requests, model cache, inference-log delivery and drops")
    def metrics():
        return PlainTextResponse(render_metrics(counts, service, logger),
                                 media_type="text/plain; version=0.0.4")

    # The example is a request for the served version (its group's next periods): regenerated when the
    # alias moves, so a client can still send it as it is after a retrain.
    generate = app.openapi
    example_of = {"version": service.current.version if service.ready else None}

    def openapi() -> dict:
        version = service.current.version if service.ready else None
        if version is not None and version != example_of["version"]:
            S.set_example(*example_request(service.current.models)[:2])
            example_of["version"], app.openapi_schema = version, None
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]

    # Added last = outermost: the counter and the rejected-request log also see the 413s that the
    # body limit answers itself.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if logger is not None:
        app.add_middleware(RejectedLog, offer=logger.offer, env=env, model=lambda: _serving(service))
    app.add_middleware(StatusCounter, counts=counts)
    return app


def _serving(service: ModelService) -> tuple[str, str]:
    return (service.current.name, service.current.version) if service.ready else (service.source.name, "")


def _is_json(content_type: str | None) -> bool:
    """No content type is read as JSON (FastAPI does); otherwise application/json or any +json type."""
    if not content_type:
        return True
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
