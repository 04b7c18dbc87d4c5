"""Workload settings as the cloud jobs read them: storage-relative sources become abfss:// URLs."""

from __future__ import annotations

from typing import Any

from mlkit_workloads.settings import WorkloadSettings

from .naming import Names


def resolve_workload_settings(settings: WorkloadSettings, names: Names) -> dict[str, Any]:
    """JSON-ready settings; container-relative sources and the tables root become full ADLS URLs."""
    data = settings.model_dump(mode="json")
    for workload in data.values():
        source = workload.get("source") if isinstance(workload, dict) else None
        if source and source.get("container"):
            source["path"] = names.abfss_url(source["container"], source.get("path") or "")
            source["container"] = None
    # Delta tables of the jobs (ingested data, metrics, decisions, predictions) live in the
    # environment's curated container unless the environment file says otherwise.
    # The jobs log to the experiments the workspace stack creates (Names.experiment).
    data["tracking"]["experiment_prefix"] = names.experiment_folder
    tables = data.get("tables")
    if isinstance(tables, dict) and not tables.get("root"):
        tables["root"] = names.abfss_url("curated", "tables")
    # Still valid settings: the job's own parser must accept exactly what we upload.
    WorkloadSettings.model_validate(data)
    return data
