"""The forecast bundle's routes: predict for one group, a group's model info.

``POST /v1/models/<job>/predict`` and ``GET /v1/models/<job>/groups/<keys>``; the routes of the
service before it served several models stay as aliases: ``POST /v1/predict`` and
``GET /v1/models/<keys>``.
"""

# No `from __future__ import annotations`: FastAPI reads the generated request models at runtime.
import time

from fastapi import Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..forecast.meta_model import UnknownGroup
from ..inference_event import inference_event
from .app import ApiError, finite
from .schema import ModelInfo, example_request
from .service import GroupLoadFailed, RowError
from .telemetry import annotate

GROUP_PATH = r"^[^/]+(/[^/]+){%d}$"
DESCRIPTION = ("Rows: periods 1 to `horizon` after the group's last trained period (see the group's info: "
               "`last_ts`, `frequency`, `horizon`). A group whose model uses features (model_type `xgboost`) "
               "needs their values in a row for every period from the first one after its history to the "
               "furthest one asked. A row that cannot be forecast is a 422 naming the row.")


def _handlers(api, e):
    S, service = e.schemas, e.service

    def named(key: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(S.keys, key))

    def describe(key: tuple[str, ...]) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in zip(S.keys, key))

    async def predict(body: S.PredictRequest, request: Request):  # type: ignore[valid-type]
        started = time.perf_counter()
        rid = request.scope.get("mlkit.request_id", "")
        api.check_batch(len(body.rows))
        lv = api.current(service)
        key = S.group_key(body)
        annotate(model=e.job, version=lv.version, group="/".join(key), request_id=rid)
        rows = S.model_input(body)
        try:
            # A loaded group that answers in well under a millisecond (see is_loaded) answers inline;
            # anything else (a load from disk, a library forecast) runs in the thread pool, so other
            # groups' requests keep flowing meanwhile.
            if service.is_loaded(lv, key):
                fc = service.predict(lv, key, rows)
            else:
                fc = await run_in_threadpool(service.predict, lv, key, rows)
        except UnknownGroup:
            raise ApiError(404, "unknown_group", f"no model for group {describe(key)} in {lv.name} version "
                           f"{lv.version}", group=named(key)) from None
        except GroupLoadFailed as err:
            raise ApiError(503, "group_unavailable", f"group {describe(key)}: {err.reason}",
                           group=named(key), headers={"Retry-After": "30"}) from None
        except RowError as err:
            field = "body.rows" if err.row is None else f"body.rows.{err.row}.{err.field}"
            raise ApiError(422, "cannot_forecast", f"{field}: {err.message}", field=field, group=named(key)) from None
        out = [finite(float(p)) for p in fc.pop("prediction")]
        intervals = {band: [finite(float(v)) for v in values] for band, values in fc.items()}
        group = named(key)
        annotate(outcome="ok")
        if api.logger is not None:
            api.logger.offer(inference_event(rid, api.env, lv.name, lv.version, 1000 * (time.perf_counter() - started),
                                             inputs=S.rows_json(body), outputs=out, group=group))
        # Returned as a response (the model above documents it): skips re-validating our own output.
        return JSONResponse({"request_id": rid, "model": {"name": lv.name, "version": lv.version},
                             "group": group, "model_type": lv.models.group_info(key).get("model_type"),
                             "predictions": out, "intervals": intervals})

    def group_info(group: str):
        parts = group.split("/")
        if len(parts) != len(S.keys) or not all(parts):
            raise ApiError(422, "invalid_request", f"path.group: expected {len(S.keys)} non-empty part(s) "
                           f"{'/'.join('<' + k + '>' for k in S.keys)}, got {group!r}", field="path.group")
        key = tuple(parts)
        lv = api.current(service)
        try:
            info = lv.models.group_info(key)
        except UnknownGroup:
            raise ApiError(404, "unknown_group", f"no model for group {describe(key)} in {lv.name} version "
                           f"{lv.version}", group=named(key)) from None
        metrics = {k: finite(float(v)) if v is not None else None for k, v in (info.get("metrics") or {}).items()}
        spec = lv.models.spec
        return ModelInfo(name=lv.name, version=lv.version, alias=api.alias, group=named(key), status=info.get("status"),
                         model_type=info.get("model_type"), first_ts=info.get("first_ts"), last_ts=info.get("last_ts"),
                         frequency=spec.frequency, horizon=spec.horizon, season_length=spec.season_length,
                         backtest_windows=spec.backtest_windows, levels=list(spec.levels),
                         trained_at=str(info["trained_at"]) if info.get("trained_at") else None,
                         run_id=info.get("run_id"), metrics=metrics, model_bytes=info.get("bytes"))

    def group_path():
        return Path(pattern=GROUP_PATH % (len(S.keys) - 1), description=f"the group's keys joined by '/': "
                    f"{'/'.join(S.keys)}", examples=["/".join(S.example_group)])

    return predict, group_info, group_path


def add(api, e) -> None:
    predict, group_info, group_path = _handlers(api, e)
    S, app = e.schemas, api.app
    app.post(f"/v1/models/{e.job}/predict", response_model=S.PredictResponse, responses=api.responses,
             dependencies=api.guarded, operation_id=f"predict_{e.job}", description=DESCRIPTION,
             summary="Forecast one or many future periods of one group, with prediction intervals")(predict)

    def info(group: str = group_path()):
        return group_info(group)

    app.get(f"/v1/models/{e.job}/groups/{{group:path}}", response_model=ModelInfo, responses=api.responses,
            dependencies=api.guarded, operation_id=f"group_info_{e.job}",
            summary=f"Model type, last trained period, frequency, horizon and backtest metrics of one group "
                    f"({'/'.join(S.keys)})")(info)


def add_legacy(api, e) -> None:
    """The routes from before several models were served: the same handlers, documented as aliases."""
    predict, group_info, group_path = _handlers(api, e)
    S, app = e.schemas, api.app
    app.post("/v1/predict", response_model=S.PredictResponse, responses=api.responses, dependencies=api.guarded,
             operation_id="predict_legacy", description=f"Alias of `POST /v1/models/{e.job}/predict`. {DESCRIPTION}",
             summary=f"Forecast one group (alias of /v1/models/{e.job}/predict)")(predict)

    def info(group: str = group_path()):
        return group_info(group)

    if len(S.keys) == 1:  # a one-part path reaches it through GET /v1/models/{name}
        api.group_info = group_info
    app.get("/v1/models/{group:path}", response_model=ModelInfo, responses=api.responses, dependencies=api.guarded,
            operation_id="group_info_legacy",
            summary=f"A group's model info (alias of /v1/models/{e.job}/groups/{{group}})")(info)


def refresh_example(e) -> bool:
    """The OpenAPI example is a request for the served version (its group's next periods): regenerated
    when the alias moves, so a client can still send it as it is after a retrain. True if it changed."""
    service = e.service
    version = service.current.version if service.ready else None
    if version is None or version == getattr(e.schemas, "example_version", None):
        return False
    e.schemas.set_example(*example_request(service.current.models)[:2])
    e.schemas.example_version = version
    return True
