"""A single classifier's route: ``POST /v1/models/<job>/predict``: probability of the positive class
and the label at the model's threshold per row, with the threshold and the version."""

# No `from __future__ import annotations`: FastAPI reads the generated request models at runtime.
import time

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..inference_event import inference_event
from .app import ApiError
from .telemetry import annotate

# Up to this many rows a request is scored on the event loop (measured well under a millisecond
# with the compiled pipeline); more go to the thread pool so a big batch never stalls other requests.
INLINE_ROWS = 16


def add(api, e) -> None:
    S, service = e.schemas, e.service

    async def predict(body: S.PredictRequest, request: Request):  # type: ignore[valid-type]
        started = time.perf_counter()
        rid = request.scope.get("mlkit.request_id", "")
        api.check_batch(len(body.rows))
        lv = api.current(service)
        annotate(model=e.job, version=lv.version, request_id=rid)
        rows = S.model_input(body)
        model = lv.models
        try:
            if len(rows) <= INLINE_ROWS:
                proba = model.probabilities(rows)
            else:
                proba = await run_in_threadpool(model.probabilities, rows)
        except (ValueError, TypeError) as err:  # a row the fitted pipeline cannot transform
            raise ApiError(422, "cannot_score", f"body.rows: {type(err).__name__}: {str(err)[:300]}",
                           field="body.rows") from None
        probabilities = [float(p) for p in proba]
        labels = [int(v) for v in model.labels(proba)]
        annotate(outcome="ok")
        if api.logger is not None:
            api.logger.offer(inference_event(rid, api.env, lv.name, lv.version, 1000 * (time.perf_counter() - started),
                                             inputs=rows, outputs=probabilities))
        return JSONResponse({"request_id": rid, "model": {"name": lv.name, "version": lv.version},
                             "threshold": model.threshold, "positive_label": S.positive_label,
                             "probabilities": probabilities, "labels": labels})

    api.app.post(f"/v1/models/{e.job}/predict", response_model=S.PredictResponse, responses=api.responses,
                 dependencies=api.guarded, operation_id=f"predict_{e.job}",
                 summary="Classify rows: probability of the positive class and the label at the model's threshold",
                 description="Every input column in every row (null: a missing value, imputed as in training). "
                             "`labels` is 1 where the probability is at or above `threshold`.")(predict)


def refresh_example(e) -> bool:
    """The example rows come from the served version's logged input example, when it has one."""
    service = e.service
    version = service.current.version if service.ready else None
    if version is None or version == getattr(e.schemas, "example_version", None):
        return False
    e.schemas.set_example(service.current.models.example)
    e.schemas.example_version = version
    return True
