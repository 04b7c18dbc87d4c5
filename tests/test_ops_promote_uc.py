"""Unity Catalog registry through MLflow's own ``databricks-uc`` client, against a 127.0.0.1 stand-in.

What the jobs do (``log_model(registered_model_name=catalog.schema.model)``, aliases) and what
promotion within one metastore does (``copy_model_version`` into the target catalog) run through
the real client; the stand-in (tests/uc_standin.py) answers the REST routes in MLflow's own
protobuf shapes. Where the stand-in stops: with customer-hosted storage (our catalogs' managed
storage in ADLS) the client uploads with the temporary SAS credential straight to
``<account>.dfs.core.windows.net``, which is not reachable here (third test).
"""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import use_tracking_uri
from uc_standin import UcRegistry, serve

from envconfig.loader import load_environment
from mlkit.ops.promote import CHAMPION, PROMOTED_FROM, copy_version
from mlkit.ops.release import ModelPin, ReleaseLock
from stacks.app import REPO

PREFIX = "/api/2.0/mlflow/unity-catalog"


@pytest.fixture()
def uc(tmp_path, monkeypatch):
    def make(mode="DEFAULT_STORAGE", root=""):
        registry = UcRegistry(mode, root)
        server = serve(registry)
        monkeypatch.setenv("DATABRICKS_HOST", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("DATABRICKS_TOKEN", "stand-in")  # the stand-in's, not a credential
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        servers.append(server)
        return registry

    servers: list = []
    monkeypatch.chdir(tmp_path)  # the sqlite tracking store's artifacts land in ./mlruns
    # The process-wide URIs belong to other tests' fixtures: put back exactly what was set (often nothing).
    with use_tracking_uri(f"sqlite:///{tmp_path}/tracking.db", registry_uri="databricks-uc"):
        yield make
    for s in servers:
        s.shutdown()


def train(name: str) -> str:
    """What train_many / train_classifier do: log the model and register it under its full name."""
    import mlflow
    from mlflow.models import infer_signature

    class Model(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    x = pd.DataFrame({"sales": [1.0, 2.0]})
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("uc-standin")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("uc-standin")
    with mlflow.start_run(experiment_id=experiment_id):  # not the active experiment of an earlier test
        info = mlflow.pyfunc.log_model(name="model", python_model=Model(), signature=infer_signature(x, x),
                                       pip_requirements=["pandas"], registered_model_name=name)
    return str(info.registered_model_version)


def routes(registry: UcRegistry) -> list[str]:
    return [f"{m} {p.removeprefix(PREFIX)}" for m, p, _ in registry.calls if "well-known" not in p]


def test_jobs_register_and_move_aliases_through_the_databricks_uc_client(uc) -> None:
    from mlflow import MlflowClient

    registry = uc()
    name = load_environment("dev", REPO / "environments", env={}).registered_models["forecast"]
    assert name == "mlk_dev.ml.forecast"
    version = train(name)
    client = MlflowClient()
    client.set_registered_model_alias(name, CHAMPION, version)
    champion = client.get_model_version_by_alias(name, CHAMPION)
    assert (champion.name, champion.version, champion.status) == (name, "1", "READY")
    seen = routes(registry)
    assert seen.index("POST /model-versions/create") < seen.index("POST /model-versions/generate-temporary-credentials") \
        < seen.index("POST /model-versions/finalize") < seen.index("POST /registered-models/alias")
    ops = [r["operation"] for _, p, r in registry.calls if p.endswith("generate-temporary-credentials")]
    assert ops == ["MODEL_VERSION_OPERATION_READ_WRITE"]
    assert "/Models/mlk_dev/ml/forecast/1/MLmodel" in registry.blobs


def test_promotion_in_one_metastore_copies_the_version_into_the_target_catalog(uc) -> None:
    from mlflow import MlflowClient

    registry = uc()
    staging = load_environment("staging", REPO / "environments", env={})
    prod = load_environment("prod", REPO / "environments", env={})
    source = staging.registered_models["forecast"]
    version = train(source)
    client = MlflowClient()
    pin = ModelPin(source, version, None, "passed", target=prod.registered_models["forecast"])
    lock = ReleaseLock("prod", "staging", "rel", "a" * 40, "w.whl", "0" * 64, [pin])
    copied = copy_version(pin, "staging", prod, client, "databricks-uc", client, lock, same_registry=True)
    assert copied == {"model": "mlk_prod.ml.forecast", "source_model": "mlk_staging.ml.forecast",
                      "source_version": "1", "version": "1", "reused": False, "previous_champion": None}
    champion = client.get_model_version_by_alias("mlk_prod.ml.forecast", CHAMPION)
    assert champion.source == "models:/mlk_staging.ml.forecast/1" and champion.status == "READY"
    assert champion.tags[PROMOTED_FROM] == "staging/mlk_staging.ml.forecast/1"
    # The registry copied the files (read with a download credential, written with an upload one).
    assert registry.blobs["/Models/mlk_prod/ml/forecast/1/MLmodel"] == registry.blobs[
        "/Models/mlk_staging/ml/forecast/1/MLmodel"]
    again = copy_version(pin, "staging", prod, client, "databricks-uc", client, lock, same_registry=True)
    assert again["reused"] and again["version"] == "1"
    assert sum(1 for n, _ in registry.versions if n == "mlk_prod.ml.forecast") == 1


@pytest.fixture()
def adls_clients(monkeypatch):
    """MLflow's Data Lake client factory, recording the account each client is for and failing at
    once: nothing leaves this machine, and no SDK retry loop runs against an unreachable account."""
    from mlflow.store.artifact import azure_data_lake_artifact_repo as repo

    asked: list[str] = []

    def refuse(account_url, credential):
        asked.append(account_url.split("?")[0])
        raise ConnectionError(f"{account_url.split('?')[0]}: needs a subscription (test)")

    monkeypatch.setattr(repo, "_get_data_lake_client", refuse)
    return asked


@pytest.mark.slow
def test_customer_hosted_storage_is_where_the_stand_in_stops(uc, adls_clients) -> None:
    registry = uc("CUSTOMER_HOSTED", "abfss://models@stmlkdevweu.dfs.core.windows.net/unity-catalog")
    with pytest.raises(Exception):
        train("mlk_dev.ml.forecast")
    seen = routes(registry)
    assert "POST /model-versions/generate-temporary-credentials" in seen
    assert "POST /model-versions/finalize" not in seen  # the upload to ADLS failed first
    assert registry.versions[("mlk_dev.ml.forecast", "1")]["status"] == "PENDING_REGISTRATION"
    # With the SAS it was handed, MLflow's client writes the files through the Data Lake SDK
    # (azure-storage-file-datalake, in the wheel) to the catalog's storage account: the next request
    # goes to stmlkdevweu.dfs.core.windows.net, which needs a subscription.
    assert set(adls_clients) == {"https://stmlkdevweu.dfs.core.windows.net"}
