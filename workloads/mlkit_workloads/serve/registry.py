"""Where the service's models come from: ``models:/<name>@<alias>`` in the MLflow registry.

The service reads the meta model's bundle directly (index + one booster file per group) rather
than ``pyfunc.load_model``: it needs the LRU bounds of the serving settings, not the training
defaults, and it must not import the model's code paths into a long-running process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..forecast.meta_model import GroupModels, NotABundle, bundle_dir


class NoChampion(Exception):
    """The alias does not exist yet (nothing promoted) or the registry is unreachable."""


@dataclass(frozen=True)
class LoadedVersion:
    name: str
    version: str
    run_id: str
    models: Any  # what the version serves: a bundle's GroupModels, or a single model (serve.single)


# The Entra ID application of Azure Databricks (the same in every tenant).
AZURE_DATABRICKS_APP = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"


class EntraDatabricksToken:
    """Keeps ``DATABRICKS_TOKEN`` set to an Entra ID token of the pod's workload identity.

    The Databricks SDK that MLflow uses has no workload-identity login, but Databricks accepts an
    Entra ID token of a managed identity that is a workspace service principal. Tokens live ~1 h;
    this renews one 10 minutes before it expires, before each registry call.
    """

    def __init__(self, credential=None):
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        self.credential = credential
        self.expires_on = 0

    def refresh_if_needed(self) -> None:
        import time

        if time.time() < self.expires_on - 600:
            return
        token = self.credential.get_token(f"{AZURE_DATABRICKS_APP}/.default")
        os.environ["DATABRICKS_TOKEN"] = token.token
        self.expires_on = token.expires_on


class RegistrySource:
    def __init__(self, name: str, alias: str, cache_dir: Path, tracking_uri: str | None = None,
                 registry_uri: str | None = None, token: EntraDatabricksToken | None = None):
        self.name, self.alias = name, alias
        self.cache_dir = Path(cache_dir)
        self.tracking_uri, self.registry_uri = tracking_uri, registry_uri
        self.token = token

    def _client(self):
        from mlflow import MlflowClient

        if self.token is not None:
            self.token.refresh_if_needed()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def current_version(self) -> tuple[str, str]:
        """(version, run_id) the alias points at now. Cheap: one registry call."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self._client().get_model_version_by_alias(self.name, self.alias)
        except MlflowException as e:
            raise NoChampion(f"registered model {self.name!r} has no alias {self.alias!r} "
                             f"({str(e).splitlines()[0][:200]})") from None
        except Exception as e:  # registry or token service unreachable: keep serving what is loaded
            raise NoChampion(f"registry unreachable: {type(e).__name__}: {str(e)[:200]}") from None
        return str(mv.version), mv.run_id or ""

    def download(self, version: str) -> Path:
        """The version's model directory (the one with the MLmodel file), downloaded once per version."""
        import mlflow

        # A progress bar per download is noise in a service log.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        target = self.cache_dir / self.name / version
        if not target.is_dir():
            # Download beside the target and rename: a crash mid-download never leaves a half model.
            partial = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=_mkdir(target.parent)))
            try:
                # Resolve the artifact location with *our* client: MLflow's own models:/ resolution uses
                # the process-wide registry URI (./mlflow.db by default), not the one given here.
                uri = self._client().get_model_version_download_uri(self.name, version)
                mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(partial),
                                                    tracking_uri=self.tracking_uri)
                os.replace(partial, target)
            except OSError:
                shutil.rmtree(partial, ignore_errors=True)
                if not target.is_dir():  # another process won the rename: theirs is as good
                    raise
            except Exception:
                shutil.rmtree(partial, ignore_errors=True)
                raise
        return _model_root(target)

    def load(self, version: str, run_id: str, max_models: int, max_bytes: int) -> LoadedVersion:
        """A many-models bundle version, opened with the service's LRU bounds."""
        root = self.download(version)
        try:
            bundle = bundle_dir(root)
        except NotABundle as e:
            raise NoChampion(str(e)) from None
        return LoadedVersion(self.name, version, run_id, GroupModels(bundle, max_models=max_models, max_bytes=max_bytes))


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _model_root(directory: Path) -> Path:
    """download_artifacts may write the model into a sub-directory: find the MLmodel file."""
    if (directory / "MLmodel").is_file():
        return directory
    for p in sorted(directory.rglob("MLmodel")):
        return p.parent
    raise NoChampion(f"no MLmodel file in the downloaded artifacts at {directory}")


