"""What the Databricks jobs do in each data lake container: the one table both sides follow.

The platform stack turns it into Azure roles for the access connector (read: Storage Blob Data
Reader, write: Storage Blob Data Contributor, per container); the workspace stack turns it into
Unity Catalog external locations and grants for the jobs' run-as principal (read: READ FILES,
write: READ FILES + WRITE FILES). A container not listed here gets neither.
"""

from __future__ import annotations

from typing import Literal

Access = Literal["read", "write"]

JOB_CONTAINER_ACCESS: dict[str, Access] = {
    "raw": "read",              # ingest reads the sources; nothing of ours writes raw data
    "curated": "write",         # the Delta tables under tables.root (ingested data, metrics, predictions)
    "models": "write",          # the jobs write the model artefacts the scoring identity reads
    "inference-logs": "read",   # monitoring reads what Event Hubs Capture archived (Capture writes)
}
