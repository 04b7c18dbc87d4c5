"""Model names across tracking and serving: which Unity Catalog model each job registers, which one the
scoring service loads, and the checks on those names (valid, distinct, registered by some job)."""

from __future__ import annotations

from mlkit_workloads.model_names import check_identifier, full_model_name
from mlkit_workloads.registry_contract import JOBS, served_models
from mlkit_workloads.settings import WorkloadSettings


def registered_models(ws: WorkloadSettings) -> dict[str, str]:
    """Job -> full Unity Catalog name (``catalog.schema.model``) of the model it registers."""
    registry = ws.tracking.registry
    return {job: full_model_name(registry, getattr(ws, job).registered_model) for job in JOBS}


def served(ws: WorkloadSettings) -> dict[str, str]:
    """Job -> full name of each model the scoring service serves (the served-model rule,
    mlkit_workloads.registry_contract.served_models: the service, the stacks' grants and `mlkit serve`)."""
    return {m.job: m.name for m in served_models(ws)}


def model_name_problems(ws: WorkloadSettings, is_cloud: bool) -> list[tuple[str, str]]:
    """(field, message) for model names that are not valid Unity Catalog names, clash, or are unnamed."""
    out = []
    fields = {"workloads.forecast.registered_model": ws.forecast.registered_model,
              "workloads.classifier.registered_model": ws.classifier.registered_model}
    for f, value in fields.items():
        try:
            check_identifier(value, "model")
        except ValueError as e:
            out.append((f, f"{e} (it becomes the last part of catalog.schema.model)"))
    if ws.forecast.registered_model == ws.classifier.registered_model:
        out.append(("workloads.classifier.registered_model",
                    f"{ws.classifier.registered_model!r} is the forecast job's model too: each job needs its own"))
    registry = ws.tracking.registry
    if is_cloud:
        for part in ("catalog", "schema_"):
            if part not in registry.model_fields_set:
                out.append((f"workloads.tracking.registry.{part.rstrip('_')}",
                            "a cloud environment names the Unity Catalog catalog and schema of its models "
                            "(e.g. catalog: mlk_dev, schema: ml)"))
    return out
