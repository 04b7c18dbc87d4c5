"""Workload settings as the cloud jobs read them: storage-relative sources become abfss:// URLs."""

from __future__ import annotations

from typing import Any

from mlkit_workloads.settings import WorkloadSettings

from .naming import Names


def resolve_workload_settings(settings: WorkloadSettings, names: Names) -> dict[str, Any]:
    """JSON-ready settings; every ``source`` with a ``container`` gets its full ADLS URL as ``path``."""
    data = settings.model_dump(mode="json")
    for workload in data.values():
        source = workload.get("source") if isinstance(workload, dict) else None
        if source and source.get("container"):
            source["path"] = names.abfss_url(source["container"], source.get("path") or "")
            source["container"] = None
    # Still valid settings: the job's own parser must accept exactly what we upload.
    WorkloadSettings.model_validate(data)
    return data
