"""Workload settings as the cloud jobs read them: storage-relative sources become abfss:// URLs."""

from __future__ import annotations

from typing import Any

from mlkit_workloads.settings import WorkloadSettings

from envconfig.naming import Names

from .platform.event_hubs import CAPTURE_CONTAINER, capture_prefix


def _is_absolute(path: str) -> bool:
    return "://" in path or path.startswith("/")


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
    # In the cloud the monitoring job reads what Event Hubs Capture archived (the platform stack
    # turns it on); a relative capture_path is a folder of the inference-logs container.
    monitoring = data["monitoring"]
    capture = monitoring.get("capture_path") or capture_prefix(names)
    monitoring["capture_path"] = capture if _is_absolute(capture) else names.abfss_url(CAPTURE_CONTAINER, capture)
    # Still valid settings: the job's own parser must accept exactly what we upload.
    WorkloadSettings.model_validate(data)
    return data
