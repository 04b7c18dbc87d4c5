"""Model names across tracking and serving: which Unity Catalog model each job registers, which one the
scoring service loads, and the checks on those names (valid, distinct, registered by some job)."""

from __future__ import annotations

from mlkit_workloads.model_names import check_identifier, full_model_name
from mlkit_workloads.settings import WorkloadSettings


def registered_models(ws: WorkloadSettings) -> dict[str, str]:
    """Job -> full Unity Catalog name (``catalog.schema.model``) of the model it registers."""
    registry = ws.tracking.registry
    return {job: full_model_name(registry, getattr(ws, job).registered_model)
            for job in ("forecast", "classifier")}


def served_model(ws: WorkloadSettings) -> str:
    """Full name of the model the scoring service loads (the rule of mlkit_workloads.serve.runner.build)."""
    return full_model_name(ws.tracking.registry, ws.serving.registered_model or ws.forecast.registered_model)


def model_name_problems(ws: WorkloadSettings, is_cloud: bool) -> list[tuple[str, str]]:
    """(field, message) for model names that are not valid Unity Catalog names, clash, or are unnamed."""
    out = []
    fields = {"workloads.forecast.registered_model": ws.forecast.registered_model,
              "workloads.classifier.registered_model": ws.classifier.registered_model}
    if ws.serving.registered_model is not None:
        fields["workloads.serving.registered_model"] = ws.serving.registered_model
    for f, value in fields.items():
        try:
            check_identifier(value, "model")
        except ValueError as e:
            out.append((f, f"{e} (it becomes the last part of catalog.schema.model)"))
    if ws.forecast.registered_model == ws.classifier.registered_model:
        out.append(("workloads.classifier.registered_model",
                    f"{ws.classifier.registered_model!r} is the forecast job's model too: each job needs its own"))
    served = ws.serving.registered_model
    if served is not None and served not in (ws.forecast.registered_model, ws.classifier.registered_model):
        out.append(("workloads.serving.registered_model", f"{served!r} is registered by no job (forecast registers "
                    f"{ws.forecast.registered_model!r}, classifier {ws.classifier.registered_model!r})"))
    registry = ws.tracking.registry
    if is_cloud:
        for part in ("catalog", "schema_"):
            if part not in registry.model_fields_set:
                out.append((f"workloads.tracking.registry.{part.rstrip('_')}",
                            "a cloud environment names the Unity Catalog catalog and schema of its models "
                            "(e.g. catalog: mlk_dev, schema: ml)"))
    return out
