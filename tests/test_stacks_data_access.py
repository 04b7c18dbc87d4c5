"""The jobs' identity to the data lake (Unity Catalog through a Databricks access connector) and the
storage firewall that lets trusted services in: each construct on its own, then the synthesized
app for the cross-stack wiring, the exact grants and the network rules per environment."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import cdktn  # noqa: E402
import pytest  # noqa: E402
from cdktn import TerraformStack  # noqa: E402

from envconfig.loader import load_all  # noqa: E402
from stacks.app import build_app  # noqa: E402
from stacks.data_access import JOB_CONTAINER_ACCESS  # noqa: E402
from stacks.errors import StackInputError  # noqa: E402
from stacks.platform.access_connector import AccessConnectorProps, UnityCatalogConnector  # noqa: E402
from stacks.platform.storage import DataLakeProps, DataLakeStorage  # noqa: E402
from stacks.workspace.data_access import DataAccessProps, UnityCatalogDataAccess  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLOUD = ("dev", "staging", "prod")
APP_ID = "66666666-6666-6666-6666-666666666666"
METASTORE = "77777777-7777-7777-7777-777777777777"
CONNECTOR = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Databricks/accessConnectors/dbac-x"
TAGS = {"environment": "test", "owner": "o", "cost-center": "c"}
ROLE = {"read": "Storage Blob Data Reader", "write": "Storage Blob Data Contributor"}
PRIVILEGES = {"read": ["READ_FILES"], "write": ["READ_FILES", "WRITE_FILES"]}


def synth(build) -> dict:
    stack = TerraformStack(cdktn.Testing.app(), "test")
    build(stack)
    return json.loads(cdktn.Testing.synth(stack))


def resources(doc: dict, rtype: str) -> dict[str, dict]:
    return doc.get("resource", {}).get(rtype, {})


# ------------------------------------------------------------------------ constructs


def test_the_table_covers_only_real_containers_and_raw_is_read_only() -> None:
    from envconfig.naming import Names

    assert set(JOB_CONTAINER_ACCESS) <= set(Names.CONTAINERS)
    assert JOB_CONTAINER_ACCESS == {"raw": "read", "curated": "write", "models": "write", "inference-logs": "read"}


def test_access_connector_has_a_system_assigned_identity_and_tags() -> None:
    doc = synth(lambda s: UnityCatalogConnector(s, "c", AccessConnectorProps(
        name="dbac-mlk-test-weu", resource_group_name="rg", location="westeurope", tags=TAGS)))
    connector, = resources(doc, "azurerm_databricks_access_connector").values()
    assert connector["identity"] == {"type": "SystemAssigned"}  # no user-assigned identity to manage
    assert (connector["name"], connector["tags"]) == ("dbac-mlk-test-weu", TAGS)


def test_private_lake_keeps_public_endpoint_behind_a_deny_all_firewall() -> None:
    doc = synth(lambda s: DataLakeStorage(s, "lake", DataLakeProps(
        name="sttest", resource_group_name="rg", location="westeurope", containers=("raw",),
        public_network_access=False, trusted_resource_ids=(CONNECTOR,))))
    account, = resources(doc, "azurerm_storage_account").values()
    assert account["public_network_access"] == "Enabled"
    assert account["network_rules"] == {
        "default_action": "Deny", "bypass": ["AzureServices"], "ip_rules": [],
        "private_link_access": [{"endpoint_resource_id": CONNECTOR}]}
    assert "virtual_network_subnet_ids" not in account["network_rules"]


def test_public_lake_has_no_firewall_and_ignores_resource_rules() -> None:
    doc = synth(lambda s: DataLakeStorage(s, "lake", DataLakeProps(
        name="sttest", resource_group_name="rg", location="westeurope", containers=("raw",),
        public_network_access=True, trusted_resource_ids=(CONNECTOR,))))
    account, = resources(doc, "azurerm_storage_account").values()
    assert account["public_network_access"] == "Enabled" and "network_rules" not in account
    assert account["shared_access_key_enabled"] is False  # still Entra ID only


def test_grant_containers_gives_one_role_per_listed_container_only() -> None:
    holder = {}

    def build(stack):
        lake = holder["lake"] = DataLakeStorage(stack, "lake", DataLakeProps(
            name="sttest", resource_group_name="rg", location="westeurope", containers=("raw", "curated", "models")))
        lake.grant_containers("jobs", "principal-1", {"raw": "read", "curated": "write"})

    doc = synth(build)
    containers = {a: c["name"] for a, c in resources(doc, "azurerm_storage_container").items()}
    grants = {}
    for ra in resources(doc, "azurerm_role_assignment").values():
        address = re.fullmatch(r"\$\{azurerm_storage_container\.([\w-]+)\.id\}", ra["scope"]).group(1)
        assert ra["principal_id"] == "principal-1" and ra["principal_type"] == "ServicePrincipal"
        grants[containers[address]] = ra["role_definition_name"]
    assert grants == {"raw": ROLE["read"], "curated": ROLE["write"]}  # models: nothing
    with pytest.raises(ValueError, match="'read' or 'write', not admin"):
        holder["lake"].grant_containers("x", "p", {"raw": "admin"})  # type: ignore[dict-item]
    with pytest.raises(KeyError, match="no container 'inference-logs'"):
        holder["lake"].grant_containers("y", "p", {"inference-logs": "read"})


def _data_access(metastore_id: str | None = METASTORE, **kw) -> DataAccessProps:
    return DataAccessProps(
        access_connector_id=CONNECTOR, credential_name="sc_mlk_test_weu_datalake",
        locations={"raw": ("el_raw", "abfss://raw@st.dfs.core.windows.net", "read"),
                   "curated": ("el_curated", "abfss://curated@st.dfs.core.windows.net", "write")},
        principal_application_id=APP_ID, workspace_id="1234567890123456", metastore_id=metastore_id, **kw)


def test_unity_catalog_objects_are_isolated_and_grants_exact() -> None:
    doc = synth(lambda s: UnityCatalogDataAccess(s, "access", _data_access()))
    (assignment_address, assignment), = resources(doc, "databricks_metastore_assignment").items()
    # Terraform converts the (cross-stack, string) workspace id to the number the attribute takes.
    assert assignment["metastore_id"] == METASTORE and assignment["workspace_id"] == "1234567890123456"
    (credential_address, credential), = resources(doc, "databricks_storage_credential").items()
    assert credential["azure_managed_identity"] == {"access_connector_id": CONNECTOR}
    assert credential["isolation_mode"] == "ISOLATION_MODE_ISOLATED"
    assert not {"azure_service_principal", "skip_validation", "owner"} & set(credential)
    assert credential["depends_on"] == [f"databricks_metastore_assignment.{assignment_address}"]
    locations = resources(doc, "databricks_external_location")
    by_name = {loc["name"]: (address, loc) for address, loc in locations.items()}
    assert {n: (loc["url"], loc["read_only"]) for n, (_, loc) in by_name.items()} == {
        "el_raw": ("abfss://raw@st.dfs.core.windows.net", True),
        "el_curated": ("abfss://curated@st.dfs.core.windows.net", False)}
    for _, loc in by_name.values():
        assert loc["credential_name"] == f"${{databricks_storage_credential.{credential_address}.name}}"
        assert loc["isolation_mode"] == "ISOLATION_MODE_ISOLATED" and "skip_validation" not in loc
    granted = {}
    for g in resources(doc, "databricks_grants").values():
        address = re.fullmatch(r"\$\{databricks_external_location\.([\w-]+)\.name\}", g["external_location"]).group(1)
        assert set(g) - {"//"} == {"external_location", "grant"}  # nothing on the credential or metastore
        granted[locations[address]["name"]] = g["grant"]
    assert granted == {"el_raw": [{"principal": APP_ID, "privileges": ["READ_FILES"]}],
                       "el_curated": [{"principal": APP_ID, "privileges": ["READ_FILES", "WRITE_FILES"]}]}


def test_no_metastore_assignment_without_a_metastore_id_and_bad_input_refused() -> None:
    doc = synth(lambda s: UnityCatalogDataAccess(s, "access", _data_access(None)))
    assert not resources(doc, "databricks_metastore_assignment")
    assert "depends_on" not in next(iter(resources(doc, "databricks_storage_credential").values()))
    with pytest.raises(StackInputError, match="access must be read or write"):
        UnityCatalogDataAccess(TerraformStack(cdktn.Testing.app(), "t"), "a", DataAccessProps(
            access_connector_id=CONNECTOR, credential_name="c", principal_application_id=APP_ID,
            locations={"raw": ("el", "abfss://raw@st.dfs.core.windows.net", "manage")}))  # type: ignore[dict-item]
    with pytest.raises(StackInputError, match="databricks.metastore_id: assigning a metastore needs the workspace id"):
        UnityCatalogDataAccess(TerraformStack(cdktn.Testing.app(), "t"), "a", DataAccessProps(
            access_connector_id=CONNECTOR, credential_name="c", principal_application_id=APP_ID,
            locations={}, metastore_id=METASTORE))


# ------------------------------------------------------------------------ the synthesized app


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    configs = load_all(REPO / "environments")
    outdir = tmp_path_factory.mktemp("synth-data-access") / "cdktf.out"
    build_app(configs, str(outdir)).synth()
    manifest = json.loads((outdir / "manifest.json").read_text())
    docs = {n: json.loads((outdir / s["synthesizedStackPath"]).read_text()) for n, s in manifest["stacks"].items()}
    return configs, docs


def _platform_value(platform: dict, workspace: dict, expression: str) -> str:
    """${data.terraform_remote_state.X.outputs.O} in the workspace stack -> output O's value in the platform."""
    remote, = workspace["data"]["terraform_remote_state"]
    match = re.fullmatch(rf"\$\{{data\.terraform_remote_state\.{re.escape(remote)}\.outputs\.([\w-]+)\}}", expression)
    assert match, f"{expression!r} is not a reference into the platform stack"
    return platform["output"][match.group(1)]["value"]


def _lake_connector(platform: dict, names) -> tuple[str, dict]:
    """The jobs' access connector to the lake (by its name; the export has a connector of its own)."""
    (address, connector), = [(a, c) for a, c in resources(platform, "azurerm_databricks_access_connector").items()
                             if c["name"] == names.databricks_access_connector]
    return address, connector


@pytest.mark.parametrize("env", CLOUD)
def test_access_connector_roles_per_container(app, env) -> None:
    configs, docs = app
    names, platform = configs[env].names, docs[f"{env}-platform"]
    connector_address, connector = _lake_connector(platform, names)
    assert connector["identity"] == {"type": "SystemAssigned"}
    containers = {a: c["name"] for a, c in resources(platform, "azurerm_storage_container").items()}
    principal = f"${{azurerm_databricks_access_connector.{connector_address}.identity[0].principal_id}}"
    roles: dict[str, list[str]] = {}
    for ra in resources(platform, "azurerm_role_assignment").values():
        if f"azurerm_databricks_access_connector.{connector_address}." not in ra["principal_id"]:
            continue  # the export's connector has no container role (test_export checks its credential)
        assert ra["principal_id"] == principal
        scope = re.fullmatch(r"\$\{azurerm_storage_container\.([\w-]+)\.id\}", ra["scope"])
        assert scope, f"the connector is granted on {ra['scope']}, not on a container"
        roles.setdefault(containers[scope.group(1)], []).append(ra["role_definition_name"])
    assert roles == {c: [ROLE[a]] for c, a in JOB_CONTAINER_ACCESS.items()}
    assert roles["raw"] == ["Storage Blob Data Reader"] and roles["curated"] == ["Storage Blob Data Contributor"]
    output = platform["output"]["databricks_access_connector_id"]
    assert output["value"] == f"${{azurerm_databricks_access_connector.{connector_address}.id}}"


@pytest.mark.parametrize("env", CLOUD)
def test_workspace_unity_catalog_wiring(app, env) -> None:
    configs, docs = app
    cfg = configs[env]
    names, platform, workspace = cfg.names, docs[f"{env}-platform"], docs[f"{env}-workspace"]
    connector_address, _ = _lake_connector(platform, names)
    workspace_address = next(iter(resources(platform, "azurerm_databricks_workspace")))

    assignment, = resources(workspace, "databricks_metastore_assignment").values()
    assert assignment["metastore_id"] == cfg.databricks.metastore_id
    assert _platform_value(platform, workspace, assignment["workspace_id"]) == \
        f"${{azurerm_databricks_workspace.{workspace_address}.workspace_id}}"

    (credential_address, credential), = resources(workspace, "databricks_storage_credential").items()
    assert credential["name"] == names.storage_credential
    assert _platform_value(platform, workspace, credential["azure_managed_identity"]["access_connector_id"]) == \
        f"${{azurerm_databricks_access_connector.{connector_address}.id}}"

    locations = resources(workspace, "databricks_external_location")
    assert {loc["name"]: loc["url"] for loc in locations.values()} == \
        {names.external_location(c): names.abfss_url(c).rstrip("/") for c in JOB_CONTAINER_ACCESS}
    assert all(loc["credential_name"] == f"${{databricks_storage_credential.{credential_address}.name}}"
               for loc in locations.values())
    assert {loc["name"]: loc["read_only"] for loc in locations.values()} == \
        {names.external_location(c): a == "read" for c, a in JOB_CONTAINER_ACCESS.items()}

    by_address = {a: loc["name"] for a, loc in locations.items()}
    grants = {}
    for g in resources(workspace, "databricks_grants").values():
        if "external_location" not in g:
            continue  # the registered models' grants: tests/test_stacks_model_access.py
        address = re.fullmatch(r"\$\{databricks_external_location\.([\w-]+)\.name\}", g["external_location"]).group(1)
        grants[by_address[address]] = g["grant"]
    run_as = cfg.principals.deployer_application_id
    assert run_as and re.fullmatch(r"[0-9a-f-]{36}", run_as)
    assert grants == {names.external_location(c): [{"principal": run_as, "privileges": PRIVILEGES[a]}]
                      for c, a in JOB_CONTAINER_ACCESS.items()}

    # The identity the grants name is the one every job runs as, on clusters dedicated to it.
    grant_refs = {f"databricks_grants.{a}" for a, g in resources(workspace, "databricks_grants").items()
                  if "external_location" in g}  # the lake's; the export credential's: tests/test_export.py
    for job in resources(workspace, "databricks_job").values():
        assert job["run_as"] == {"service_principal_name": run_as}
        cluster = job["job_cluster"][0]["new_cluster"]
        assert (cluster["data_security_mode"], cluster["single_user_name"]) == ("SINGLE_USER", run_as)
        assert grant_refs <= set(job["depends_on"])
    policy, = resources(workspace, "databricks_cluster_policy").values()
    assert json.loads(policy["definition"])["data_security_mode"] == {"type": "fixed", "value": "SINGLE_USER"}


@pytest.mark.parametrize("env", CLOUD)
def test_storage_firewall_follows_the_environment(app, env) -> None:
    configs, docs = app
    platform = docs[f"{env}-platform"]
    # the data lake (Azure ML's own account, where it is on, is covered in test_synth_app)
    lake_address, account = next((a, s) for a, s in resources(platform, "azurerm_storage_account").items()
                                 if s["name"] == configs[env].names.storage_account)
    connector_address, _ = _lake_connector(platform, configs[env].names)
    # Enabled everywhere: a Disabled endpoint would shut out Event Hubs Capture and the access connector.
    assert account["public_network_access"] == "Enabled"
    if configs[env].storage.public_network_access:
        assert "network_rules" not in account
    else:
        assert configs[env].network.private
        assert account["network_rules"] == {
            "default_action": "Deny", "bypass": ["AzureServices"], "ip_rules": [],
            "private_link_access": [
                {"endpoint_resource_id": f"${{azurerm_databricks_access_connector.{connector_address}.id}}"}]}
        # The private endpoints stay the way in for AKS and the Databricks clusters.
        endpoints = {e["private_service_connection"]["subresource_names"][0]
                     for e in resources(platform, "azurerm_private_endpoint").values()
                     if e["private_service_connection"]["private_connection_resource_id"].startswith(
                         f"${{azurerm_storage_account.{lake_address}.")}
        assert endpoints == {"dfs", "blob"}


def test_staging_and_prod_are_firewalled_and_dev_is_not(app) -> None:
    configs, _ = app
    assert {e: configs[e].storage.public_network_access for e in CLOUD} == \
        {"dev": True, "staging": False, "prod": False}


def test_workspace_stack_refuses_an_environment_without_the_run_as_application_id(tmp_path) -> None:
    configs = load_all(REPO / "environments")
    dev = configs["dev"]
    configs = {"dev": dev.model_copy(update={
        "principals": dev.principals.model_copy(update={"deployer_application_id": None})})}
    with pytest.raises(StackInputError, match=r"^principals\.deployer_application_id: dev: the jobs run as"):
        build_app(configs, str(tmp_path / "cdktf.out"))
