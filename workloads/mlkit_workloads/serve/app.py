"""The FastAPI app: every served model's predict route, model info, health, readiness, metrics.
Built by :func:`create_app` from one :class:`Endpoint` per served model.

Routes: ``POST /v1/models/<job>/predict`` per served model (each with its own request and
response schema in OpenAPI), ``GET /v1/models`` (what is served), ``GET /v1/models/<job>``,
the forecast's ``GET /v1/models/forecast/groups/<keys>``; the routes before several models were
served stay as aliases of the forecast's (``POST /v1/predict``, ``GET /v1/models/<keys>``).

Errors always have one shape, ``{"error": {status, code, message, field?, group?}}``; the message
names the field (422), the model or the group (404/503). A predict handler is ``async`` and sends
CPU work that may take long (a cold group load, a forecast with features) to the thread pool, so
it never stalls the event loop for other requests.
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime, and the
# request models are generated, so they must be real objects, not strings.
import logging
import math
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from .auth import ApiKeys
from .inference_log import InferenceLogger
from .metrics import ServiceMetrics
from .middleware import BodyLimit, Observe, Routes
from .schema import ErrorResponse
from .service import NotReady, VersionWatcher
from .settings import ServingSettings
from .telemetry import annotate, telemetry_config

log = logging.getLogger("mlkit.serve")


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


def finite(v: Any) -> Any:
    return v if not isinstance(v, float) or math.isfinite(v) else None


ERRORS = {code: {"model": ErrorResponse, "description": desc} for code, desc in (
    (401, "missing or invalid bearer token"), (404, "unknown model or group (the message names it)"),
    (413, "body or batch over the configured limit"), (415, "the body is not sent as application/json"),
    (422, "malformed body, wrong type, or a row the model cannot score (names the field and row)"),
    (503, "the model is not ready, or this group's model failed to load (others keep serving)"))}


@dataclass
class Endpoint:
    """One served model: its route name (the job), how requests reach it and what it serves."""

    job: str
    service: VersionWatcher
    schemas: Any  # schema.Schemas (a bundle) or schema.ClassifierSchemas (a single model)
    routes: Any   # add(api, endpoint): the model's routes (routes_forecast / routes_classifier)


@dataclass
class Api:
    """What the routes of every model share."""

    app: FastAPI
    settings: ServingSettings
    env: str
    alias: str
    guarded: list
    responses: dict
    logger: InferenceLogger | None
    group_info: Any = None  # the forecast's legacy GET /v1/models/<keys>, when the forecast is served

    def current(self, service: VersionWatcher):
        try:
            return service.current
        except NotReady as e:
            raise ApiError(503, "not_ready", f"model {service.job!r}: {e}", headers={"Retry-After": "5"}) from None

    def check_batch(self, n: int) -> None:
        if n > self.settings.max_batch_rows:
            raise ApiError(413, "batch_too_large",
                           f"{n} rows; the limit is {self.settings.max_batch_rows} per request", field="rows")


def create_app(endpoints: list[Endpoint], settings: ServingSettings, *, env: str, alias: str,
               auth: ApiKeys | None, logger: InferenceLogger | None, tracer_provider=None) -> FastAPI:
    """``auth=None`` means open (local only; the caller says so at start). ``tracer_provider``: where
    the request spans go (None: not traced)."""
    services = {e.job: e.service for e in endpoints}
    metrics = ServiceMetrics(services, logger)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        for s in services.values():
            s.stop()
        if logger is not None:
            counts = logger.close()
            log.info("inference log closed: %s", counts)

    names = ", ".join(f"`{e.job}`" for e in endpoints)
    app = FastAPI(title="mlkit scoring service", version="2", lifespan=lifespan,
                  telemetry=telemetry_config(tracer_provider),
                  description=(f"Models served from the registry alias `@{alias}`: {names}, each at "
                               "`POST /v1/models/{name}/predict` with its own request schema. The forecast's "
                               "group models load on first use into a bounded LRU."))
    bearer = HTTPBearer(auto_error=False, description="an API key from the environment's Key Vault")

    def authorized(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if auth is None:
            return
        if not auth.check(creds.credentials if creds else None):
            raise ApiError(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer <key>)",
                           headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(authorized)] if auth is not None else []
    responses = {c: ERRORS[c] for c in ERRORS if c != 401 or auth is not None}
    api = Api(app, settings, env, alias, guarded, responses, logger)

    # The request's span (when traced) gets its outcome: "ok" from the handlers, else the error code.
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        annotate(outcome=e.code, request_id=request.scope.get("mlkit.request_id"))
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
        annotate(outcome="invalid_request", request_id=request.scope.get("mlkit.request_id"))
        errors = e.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = _field(first["loc"])
        msg = first["msg"] if first.get("type") != "json_invalid" else "the body is not valid JSON"
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return _error_response(ApiError(422, "invalid_request", f"{field}: {msg}{more}", field=field))

    def describe(job: str) -> dict:
        s = services[job]
        out: dict[str, Any] = {"name": s.source.name, "alias": alias, "ready": s.ready, "status": s.status,
                               "predict": f"/v1/models/{job}/predict"}
        if s.ready:
            out["version"] = s.current.version
        return out

    @app.get("/v1/models", dependencies=guarded, summary="The models served: name, version, readiness, route",
             responses={c: ERRORS[c] for c in (401,) if auth is not None})
    def list_models():
        return {"models": {job: describe(job) for job in services}}

    for e in endpoints:  # concrete routes first: they win over the templated ones below
        e.routes.add(api, e)

    @app.get("/v1/models/{name}", dependencies=guarded, summary="One served model: version, readiness, route",
             responses={c: ERRORS[c] for c in (401, 404) if c != 401 or auth is not None})
    def model(name: str = Path(description=f"one of {', '.join(services)}", json_schema_extra={"enum": list(services)})):
        if name in services:
            return describe(name)
        if api.group_info is not None:  # a one-key forecast's group info as before (GET /v1/models/<key>)
            return api.group_info(name)
        raise _unknown_model(name, services)

    @app.post("/v1/models/{name}/predict", include_in_schema=False)
    def unknown_model(name: str):
        raise _unknown_model(name, services)

    # Before the forecast's legacy GET /v1/models/{group:path}: otherwise GET <model>/predict reads
    # as the group (store=<model>, item=predict), a 404, where the method is what is wrong.
    @app.api_route("/v1/models/{name}/predict", methods=["GET", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def predict_wrong_method(name: str):
        if name in services:
            raise ApiError(405, "method_not_allowed", f"/v1/models/{name}/predict takes POST", headers={"Allow": "POST"})
        raise _unknown_model(name, services)

    forecast = next((e for e in endpoints if hasattr(e.routes, "add_legacy")), None)
    if forecast is not None:  # after /v1/models/{name}: a one-part path is a model's name
        forecast.routes.add_legacy(api, forecast)

    @app.get("/healthz", summary="Liveness: the process answers")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: every served model has a version loaded (and API keys, when required)",
             responses={503: {"model": ErrorResponse, "description": "not ready; the message says why"}})
    def readyz():
        problems = [f"{job}: {s.status}" for job, s in services.items() if not s.ready]
        if auth is not None and not auth.ready:
            problems.append(auth.error or "API keys not loaded yet")
        if problems:
            raise ApiError(503, "not_ready", "; ".join(problems), headers={"Retry-After": "5"})
        return {"status": "ready", "alias": alias,
                "models": {job: {"name": s.current.name, "version": s.current.version} for job, s in services.items()}}

    if settings.telemetry.metrics:
        @app.get("/metrics", dependencies=guarded, response_class=Response,
                 responses={c: ERRORS[c] for c in (401,) if auth is not None},
                 summary="Prometheus: requests and latency per route and model, caches, versions, inference log")
        def metrics_route():
            body, content_type = metrics.render()
            return Response(body, media_type=content_type)

    # Added last = outermost: the observer also sees the 413s that the body limit answers itself.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    legacy = forecast.job if forecast is not None else None
    app.add_middleware(Observe, routes=Routes(list(services), legacy),
                       metrics=metrics if settings.telemetry.metrics else None,
                       offer=logger.offer if logger is not None else None, env=env,
                       model_of=lambda job: _serving(services.get(job)))
    # Each model's OpenAPI example is a request for the version it serves now: regenerated when an alias
    # moves, so a client can send it as it is after a retrain.
    generate = app.openapi

    def openapi() -> dict:
        if any([e.routes.refresh_example(e) for e in endpoints]):
            app.openapi_schema = None
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]
    app.state.metrics = metrics
    return app


def _unknown_model(name: str, services: dict) -> ApiError:
    return ApiError(404, "unknown_model", f"no model {name[:100]!r} is served here; served: {', '.join(services)}",
                    field="path.name")


def _serving(service: VersionWatcher | None) -> tuple[str, str]:
    if service is None:
        return "", ""
    return (service.current.name, service.current.version) if service.ready else (service.source.name, "")


def _is_json(content_type: str | None) -> bool:
    """No content type is read as JSON (FastAPI does); otherwise application/json or any +json type."""
    if not content_type:
        return True
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
