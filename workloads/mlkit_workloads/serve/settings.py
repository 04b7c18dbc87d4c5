"""Settings of the scoring service: the ``workloads.serving`` section of an environment file.

Every default is valid for ``local``; the validators say which field to change.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..strict import Strict

QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Mi|Gi)?$"  # the Kubernetes quantities we accept (cpu: m, memory: Mi/Gi)


def memory_bytes(quantity: str) -> int:
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(Mi|Gi|m)?", quantity)
    if not m or m.group(2) == "m":
        raise ValueError(f"{quantity!r} is not a memory size like '512Mi' or '1Gi'")
    return int(float(m.group(1)) * {"Mi": 2**20, "Gi": 2**30, None: 1}[m.group(2)])


class ServingAuth(Strict):
    """``none`` is only allowed in ``local``. ``api_key``: keys live in one Key Vault secret
    (one key per line), read with the pod's managed identity and re-read every ``refresh_seconds``
    so a rotated key takes effect without a restart."""

    mode: Literal["none", "api_key"] = "api_key"
    api_keys_secret_name: str = Field(default="scoring-api-keys", pattern=r"^[0-9A-Za-z-]{1,127}$")
    refresh_seconds: float = Field(default=300, ge=10)


class InferenceLogSettings(Strict):
    enabled: bool = True
    queue_size: int = Field(default=10_000, ge=1)
    batch_size: int = Field(default=200, ge=1, le=5000)
    flush_seconds: float = Field(default=1.0, gt=0, le=60)
    max_retries: int = Field(default=5, ge=0, le=100)
    retry_backoff_seconds: float = Field(default=0.5, ge=0, le=60)


class TelemetrySettings(Strict):
    """Traces of the service (OpenTelemetry): ``none``, ``console`` (local) or ``azure_monitor``
    (Application Insights: its connection string is read from the environment's Key Vault at start,
    never a setting's value). ``sample_ratio``: share of requests traced."""

    traces: Literal["none", "console", "azure_monitor"] = "none"
    sample_ratio: float = Field(default=1.0, gt=0, le=1)
    json_logs: bool = True  # one JSON object per log line, with the request id
    metrics: bool = True  # /metrics and its per-request counters (off: only to measure what they cost)


class KubernetesSizing(Strict):
    """Pod size and autoscaling of the AKS Deployment (``<env>-serving`` stack)."""

    cpu_request: str = Field(default="250m", pattern=QUANTITY)
    cpu_limit: str = Field(default="1", pattern=QUANTITY)
    memory_request: str = Field(default="512Mi", pattern=QUANTITY)
    memory_limit: str = Field(default="1Gi", pattern=QUANTITY)
    min_replicas: int = Field(default=2, ge=1, le=100)
    max_replicas: int = Field(default=4, ge=1, le=100)
    target_cpu_percent: int = Field(default=70, ge=10, le=100)

    @model_validator(mode="after")
    def _range(self) -> "KubernetesSizing":
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        if memory_bytes(self.memory_request) > memory_bytes(self.memory_limit):
            raise ValueError(f"memory_request ({self.memory_request}) is above memory_limit ({self.memory_limit})")
        return self


class ServingSettings(Strict):
    # The jobs whose registered model is served, each at /v1/models/<job>/predict (the served-model
    # rule: registry_contract.served_models). Every model has its own alias watcher and readiness.
    models: list[Literal["forecast", "classifier"]] = Field(default_factory=lambda: ["forecast", "classifier"],
                                                             min_length=1)
    alias: str = Field(default="champion", pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    port: int = Field(default=8080, ge=1024, le=65535)
    # Group models kept in memory per process: both bounds apply (booster bytes as serialized).
    lru_max_models: int = Field(default=256, ge=1)
    lru_max_bytes: int = Field(default=256 * 2**20, ge=2**20)
    max_body_bytes: int = Field(default=1 * 2**20, ge=1024)
    max_batch_rows: int = Field(default=1000, ge=1)
    # How often the registry is asked where the alias points (a move is served without restart).
    alias_poll_seconds: float = Field(default=30, ge=0.1)
    auth: ServingAuth = ServingAuth()
    inference_log: InferenceLogSettings = InferenceLogSettings()
    kubernetes: KubernetesSizing = KubernetesSizing()
    telemetry: TelemetrySettings = TelemetrySettings()
    # Eager load of N groups at start (and after an alias move) so the first requests are warm.
    preload_groups: int = Field(default=0, ge=0)

    @field_validator("models")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"each model is served once: {v} names one twice")
        return v

    @model_validator(mode="after")
    def _memory(self) -> "ServingSettings":
        # The LRU must fit in the pod with room for the interpreter (~300 MiB measured with the libs).
        limit = memory_bytes(self.kubernetes.memory_limit)
        if self.lru_max_bytes + 300 * 2**20 > limit:
            raise ValueError(f"lru_max_bytes ({self.lru_max_bytes >> 20} MiB) + ~300 MiB for the process does not "
                             f"fit kubernetes.memory_limit ({self.kubernetes.memory_limit})")
        return self
