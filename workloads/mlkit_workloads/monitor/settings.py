"""``workloads.monitoring``: windows and drift thresholds of the monitoring job."""

from __future__ import annotations

from pydantic import Field

from ..strict import Strict


class MonitoringSettings(Strict):
    window_days: int = Field(default=7, ge=1, le=365, description="logged inferences of the last N days")
    bins: int = Field(default=10, ge=2, le=100, description="PSI bins (quantiles of the reference)")
    # Common reading of PSI: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
    feature_psi_threshold: float = Field(default=0.2, gt=0)
    prediction_psi_threshold: float = Field(default=0.25, gt=0)
    min_rows: int = Field(default=50, ge=1, description="fewer served rows than this: no feature verdict")
    min_rows_per_group: int = Field(default=20, ge=1, description="fewer served rows in a group: no verdict")
    fail_on_drift: bool = Field(default=False, description="fail the task (and the job run) when drift is flagged")
    capture_path: str | None = Field(
        default=None,
        description="Event Hubs Capture archive to read the logged inferences from, instead of the inference_log "
                    "table: an abfss:// URL or an absolute path as is; a relative path is inside the storage "
                    "account's inference-logs container. The stacks set it for cloud environments (to the "
                    "inference-log hub's folder) when the environment file does not.")
