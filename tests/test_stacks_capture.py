"""Event Hubs Capture of the inference log, as the synthesized app writes it for every cloud environment:
Capture on (Avro into the inference-logs container with the namespace's identity), a write grant on
that container only, and the monitoring job's settings pointing at the folder Capture writes."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest  # noqa: E402
from mlkit_workloads.settings import WorkloadSettings  # noqa: E402

from envconfig.errors import ConfigError  # noqa: E402
from envconfig.loader import load_all, load_environment  # noqa: E402
from envconfig.naming import Names  # noqa: E402
from stacks.app import build_app  # noqa: E402
from stacks.errors import StackInputError  # noqa: E402
from stacks.platform.event_hubs import (  # noqa: E402
    ARCHIVE_NAME_FORMAT,
    CAPTURE_CONTAINER,
    CaptureProps,
    InferenceLogHub,
    InferenceLogHubProps,
)

REPO = Path(__file__).resolve().parent.parent
CLOUD = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    configs = load_all(REPO / "environments")
    outdir = tmp_path_factory.mktemp("synth-capture") / "cdktf.out"
    build_app(configs, str(outdir)).synth()
    manifest = json.loads((outdir / "manifest.json").read_text())
    docs = {n: json.loads((outdir / s["synthesizedStackPath"]).read_text()) for n, s in manifest["stacks"].items()}
    return {"configs": configs, "docs": docs}


def resources(doc: dict, rtype: str) -> dict[str, dict]:
    return doc.get("resource", {}).get(rtype, {})


def one(doc: dict, rtype: str, id_prefix: str = "") -> tuple[str, dict]:
    """The one resource of ``rtype`` (whose logical id starts with ``id_prefix``: the lake's storage
    account and access connector have neighbours of their type, the ML workspace's storage and the
    export's connector)."""
    items = {a: r for a, r in resources(doc, rtype).items() if a.startswith(id_prefix)}
    assert len(items) == 1, f"expected one {rtype}, got {sorted(items)}"
    return next(iter(items.items()))


def ref(rtype: str, logical_id: str, attr: str) -> str:
    return "${" + f"{rtype}.{logical_id}.{attr}" + "}"


@pytest.mark.parametrize("env", CLOUD)
def test_capture_archives_the_inference_log_as_avro_into_its_container(synthesized, env) -> None:
    doc = synthesized["docs"][f"{env}-platform"]
    hub_id, hub = one(doc, "azurerm_eventhub")
    account_id, _ = one(doc, "azurerm_storage_account", "storage_account_")
    capture = hub["capture_description"]
    assert capture["enabled"] is True and capture["encoding"] == "Avro" and capture["skip_empty_archives"] is True
    assert 60 <= capture["interval_in_seconds"] <= 900
    assert 10 * 2**20 <= capture["size_limit_in_bytes"] <= 500 * 2**20
    dest = capture["destination"]
    assert dest["name"] == "EventHubArchive.AzureBlockBlob"
    assert dest["archive_name_format"] == \
        "{Namespace}/{EventHub}/{PartitionId}/{Year}/{Month}/{Day}/{Hour}/{Minute}/{Second}" == ARCHIVE_NAME_FORMAT
    assert dest["blob_container_name"] == "inference-logs" == CAPTURE_CONTAINER
    assert CAPTURE_CONTAINER in Names.CONTAINERS
    assert dest["storage_account_id"] == ref("azurerm_storage_account", account_id, "id")
    # The account has shared keys off: the default (StorageSAS) could not write at all.
    assert dest["storage_authentication_type"] == "SystemAssigned"
    _, ns = one(doc, "azurerm_eventhub_namespace")
    assert ns["identity"] == {"type": "SystemAssigned"}
    assert ns["sku"] in ("Standard", "Premium")  # Basic has no Capture


@pytest.mark.parametrize("env", CLOUD)
def test_capture_identity_may_write_the_inference_logs_container_only(synthesized, env) -> None:
    doc = synthesized["docs"][f"{env}-platform"]
    ns_id, _ = one(doc, "azurerm_eventhub_namespace")
    containers = {c["name"]: cid for cid, c in resources(doc, "azurerm_storage_container").items()}
    grants = {gid: g for gid, g in resources(doc, "azurerm_role_assignment").items()
              if g["principal_id"] == ref("azurerm_eventhub_namespace", ns_id, "identity[0].principal_id")}
    assert len(grants) == 1, grants  # the namespace's identity gets exactly one role, nothing else
    (grant_id, grant), = grants.items()
    assert grant["role_definition_name"] == "Storage Blob Data Contributor"
    assert grant["scope"] == ref("azurerm_storage_container", containers["inference-logs"], "id")
    assert grant["principal_type"] == "ServicePrincipal"
    # Nobody writes the lake's blobs at account scope: the only write grants on it are Capture's
    # (inference-logs), the factory's copy (raw, where Data Factory is on) and the Databricks jobs'
    # through their access connector (curated, models; see test_stacks_data_access). Azure ML's own
    # account is not the lake (its grant: test_synth_app).
    connector_id, _ = one(doc, "azurerm_databricks_access_connector", "access-connector_")
    connector = ref("azurerm_databricks_access_connector", connector_id, "identity[0].principal_id")
    lake_containers = {ref("azurerm_storage_container", c, "id") for c in containers.values()}
    writers = [g for g in resources(doc, "azurerm_role_assignment").values()
               if g["role_definition_name"] == "Storage Blob Data Contributor"
               and not g["scope"].startswith("${azurerm_storage_account.ml-workspace")]
    assert all(g["scope"] in lake_containers for g in writers)  # containers only, never the account
    factory = [g for g in writers if g["principal_id"].startswith("${azurerm_data_factory.")]
    assert [g["scope"] for g in factory] == ([ref("azurerm_storage_container", containers["raw"], "id")]
                                              if synthesized["configs"][env].data_factory.enabled else [])
    assert [g for g in writers if g["principal_id"] != connector and g not in factory] == [grant]
    assert sorted(g["scope"] for g in writers if g["principal_id"] == connector) == \
        sorted(ref("azurerm_storage_container", containers[c], "id") for c in ("curated", "models"))
    # Azure checks the destination when Capture is switched on: the hub waits for the grant.
    _, hub = one(doc, "azurerm_eventhub")
    assert f"azurerm_role_assignment.{grant_id}" in hub["depends_on"]


@pytest.mark.parametrize("env", CLOUD)
def test_monitoring_job_reads_the_folder_capture_writes(synthesized, env) -> None:
    names = synthesized["configs"][env].names
    files = {f["path"]: f for f in resources(synthesized["docs"][f"{env}-workspace"],
                                             "databricks_workspace_file").values()}
    settings = json.loads(base64.b64decode(files[names.settings_file]["content_base64"]))
    WorkloadSettings.model_validate(settings)
    # Capture's {Namespace}/{EventHub} prefix of the archive name format, in the destination container.
    assert settings["monitoring"]["capture_path"] == (
        f"abfss://inference-logs@{names.storage_account}.dfs.core.windows.net/"
        f"{names.eventhub_namespace}/{names.eventhub_inference_logs}")


def test_basic_tier_is_refused_with_a_config_error_naming_file_and_field(tmp_path) -> None:
    envdir = tmp_path / "environments"
    shutil.copytree(REPO / "environments", envdir)
    text = (envdir / "prod.yaml").read_text()
    assert "event_hubs:" not in text  # prod inherits base's event_hubs: add a Basic override
    (envdir / "prod.yaml").write_text(text + "event_hubs:\n  sku: Basic\n")
    with pytest.raises(ConfigError) as err:
        load_environment("prod", envdir, env={})
    (problem,) = err.value.problems
    assert problem.file.endswith("prod.yaml") and problem.field == "event_hubs.sku"
    assert "Basic has no Event Hubs Capture" in problem.message and "Standard or Premium" in problem.message


def test_capture_construct_refuses_basic_and_out_of_range_windows() -> None:
    import cdktn
    from cdktn import TerraformStack

    class Lake:  # the construct needs only an id and a grant from the data lake
        id = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/st"

        def grant_blob_write(self, id_, principal_id, container):
            raise AssertionError("no grant may be made for a refused configuration")

    stack = TerraformStack(cdktn.Testing.app(), "t")
    props = dict(namespace_name="evhns-test", hub_name="evh-inference-logs", consumer_group_name="cg",
                 resource_group_name="rg", location="westeurope")
    with pytest.raises(StackInputError, match=re.escape("event_hubs.sku: Event Hubs Capture needs the Standard")):
        InferenceLogHub(stack, "eh", InferenceLogHubProps(**props, sku="Basic", capture=CaptureProps(storage=Lake())))
    with pytest.raises(StackInputError, match="capture interval: 30 s is outside 60-900 s"):
        CaptureProps(storage=Lake(), interval_seconds=30)
    with pytest.raises(StackInputError, match="capture size limit"):
        CaptureProps(storage=Lake(), size_limit_bytes=1024)
