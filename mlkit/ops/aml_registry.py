"""Promotion's second registry: the target environment's Azure ML workspace (issue 13, reference 002:
"the promotion pipeline registers the models that qualify to the production Machine Learning workspace").

Azure ML speaks MLflow's REST API at the workspace's MLflow URI, ``azureml://<region>.api.azureml.ms/
mlflow/v1.0/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/
workspaces/<name>``; MLflow's own client reaches it at the same path over https with an Entra ID
bearer token (what the azureml-mlflow plugin does, without the plugin's dependencies). Each approved
version is registered once (tag ``mlkit.promoted_from``: re-runs reuse it) with the location of the
files in the target environment's registry as its source, and the result goes into the release lock.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from typing import Callable, Iterator

from envconfig.environment import EnvironmentConfig
from .release import ModelPin, ReleaseLock

PROMOTED_FROM = "mlkit.promoted_from"
# Azure Resource Manager's audience: what Azure ML's MLflow endpoint accepts for a service principal.
TOKEN_SCOPE = "https://management.azure.com/.default"


def workspace_uri(cfg: EnvironmentConfig) -> str:
    """The workspace's MLflow tracking/registry URI (azureml://...), from names the stacks use too."""
    return (f"azureml://{cfg.location}.api.azureml.ms/mlflow/v1.0/subscriptions/{cfg.subscription_id}/resourceGroups/"
            f"{cfg.names.resource_group}/providers/Microsoft.MachineLearningServices/workspaces/"
            f"{cfg.names.ml_workspace}")


def https_uri(uri: str) -> str:
    """``azureml://host/path`` -> ``https://host/path``: the REST base MLflow's client talks to."""
    if not uri.startswith("azureml://"):
        raise ValueError(f"{uri!r} is not an Azure ML MLflow URI (azureml://...)")
    return "https://" + uri.removeprefix("azureml://")


def model_name(full_name: str) -> str:
    """Azure ML model names: letters, digits, '-' and '_' (a Unity Catalog name's dots become '-')."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", full_name)


@contextmanager
def bearer(token: Callable[[], str] | None) -> Iterator[None]:
    """MLflow sends MLFLOW_TRACKING_TOKEN as the bearer token: set only while the AML calls run."""
    if token is None:
        yield
        return
    before = os.environ.get("MLFLOW_TRACKING_TOKEN")
    os.environ["MLFLOW_TRACKING_TOKEN"] = token()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
        else:
            os.environ["MLFLOW_TRACKING_TOKEN"] = before


def entra_token(credential=None) -> Callable[[], str]:
    def get() -> str:
        from azure.identity import DefaultAzureCredential

        cred = credential or DefaultAzureCredential(exclude_interactive_browser_credential=True)
        return cred.get_token(TOKEN_SCOPE).token
    return get


def register(aml, pins: list[ModelPin], copies: list[dict], source_env: str, lock: ReleaseLock, dst,
             token: Callable[[], str] | None = None) -> list[dict]:
    """Register each promoted version in the workspace; returns one record per model.

    ``copies``: promotion's records of the versions now in the target registry (model, version); their
    files' location there (``dst.get_model_version_download_uri``) is the AML version's source.
    """
    from mlflow.exceptions import MlflowException

    target_versions = {c["source_model"]: c for c in copies}
    out = []
    for pin in pins:
        copy = target_versions[pin.name]
        source = dst.get_model_version_download_uri(copy["model"], copy["version"])
        name, key = model_name(copy["model"]), f"{source_env}/{pin.name}/{pin.version}"
        tags = {PROMOTED_FROM: key, "promotion": pin.gate_decision, "mlkit.git_sha": lock.git_sha,
                "mlkit.target_model": f"{copy['model']}/{copy['version']}",
                "mlkit.data_table_version": pin.data_table_version or ""}
        with bearer(token):
            existing = [mv for mv in aml.search_model_versions(f"name='{name}'")
                        if (mv.tags or {}).get(PROMOTED_FROM) == key]
            if existing:
                version, reused = str(existing[0].version), True
            else:
                try:
                    aml.create_registered_model(name, tags={"mlkit.model": copy["model"]})
                except MlflowException as e:
                    if "RESOURCE_ALREADY_EXISTS" not in str(e.error_code):
                        raise
                mv = aml.create_model_version(name, source, tags=tags,
                                              description=f"mlkit promote {key} (gate {pin.gate_decision})")
                version, reused = str(mv.version), False
        pin.aml_model, pin.aml_version = name, version
        out.append({"model": name, "version": version, "reused": reused, "source": source})
    return out
