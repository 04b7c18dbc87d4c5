"""Drift report: fixture plan JSON, real terraform (state edited out of band), and the
Azure/Databricks inventory through the real SDK clients against stand-in servers on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from ops_helpers import ENVIRONMENTS, FIXTURES, Token, make_cdktf_out, self_signed, serve
from typer.testing import CliRunner

from envconfig.errors import UserError
from envconfig.loader import load_environment
from mlkit.cli import app
from mlkit.ops import inventory as inv
from mlkit.ops.drift import RESOURCE, Allowlist, DriftReport, Rule, analyze, load_allowlist, unmanaged_items
from mlkit.ops.drift_check import check, uc_schemas_from_state, workspace_from_state

DRIFT = FIXTURES / "ops" / "drift"
SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-mlk-dev-weu"
ARM = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers"
DEPLOYER = "11111111-1111-1111-1111-111111111111"


def load(name):
    return json.loads((DRIFT / name).read_text())


@pytest.fixture(scope="module")
def report_items():
    return analyze("dev-workspace", load("dev-workspace.refresh.json"), load("dev-workspace.plan.json"),
                   load_allowlist(variables={"deployer_application_id": DEPLOYER}))


def find(items, address, attribute):
    return [i for i in items if i.address == address and i.attribute == attribute]


def test_attribute_changed_outside_terraform(report_items):
    [runs] = find(report_items, "databricks_job.forecast", "max_concurrent_runs")
    assert (runs.kind, runs.expected, runs.actual, runs.ignored_by) == ("drift", 1, 3, "")
    assert runs.reverted_by_apply  # the normal plan sets it back: one line, not two
    [tls] = find(report_items, "azurerm_storage_account.main", "min_tls_version")
    assert (tls.expected, tls.actual) == ("TLS1_2", "TLS1_0")
    [tag] = find(report_items, "azurerm_storage_account.main", "tags.owner")
    assert (tag.expected, tag.actual) == (None, "someone")


def test_sensitive_values_are_never_reported(report_items):
    [key] = find(report_items, "azurerm_storage_account.main", "primary_access_key")
    assert key.expected == key.actual == "(sensitive)"
    assert "secret-key" not in json.dumps(DriftReport("dev", report_items).as_dict())


def test_resource_deleted_outside_terraform(report_items):
    [pool] = find(report_items, "databricks_instance_pool.default", RESOURCE)
    assert (pool.kind, pool.action, pool.actual, pool.reverted_by_apply) == \
        ("drift", "delete", "deleted outside Terraform", True)


def test_pending_change_from_code(report_items):
    [pol] = find(report_items, "databricks_cluster_policy.jobs", "definition")
    # JSON-valued strings are compared as JSON: the code's policy against the cloud's empty one
    assert (pol.kind, pol.change, pol.actual) == ("pending", "removed", {})
    assert pol.expected == {"autotermination_minutes": {"type": "fixed", "value": 20}}


def test_known_provider_noise_is_ignored_but_listed(report_items):
    ignored = {(i.address, i.attribute): i.ignored_by for i in report_items if i.ignored_by}
    assert ignored == {
        ("databricks_job.forecast", "task"): "databricks-job-task-order",
        ("databricks_job.forecast", "run_as"): "databricks-job-run-as-default",
        ("databricks_job.forecast", "job_cluster[main].new_cluster[0].enable_elastic_disk"): "databricks-elastic-disk",
        ("databricks_permissions.forecast", "access_control"): "databricks-permissions-order",
    }
    report = DriftReport("dev", report_items)
    md = report.markdown()
    assert "## Ignored (known false diffs, by rule): 2 resource(s)" in md and "Jobs API returns tasks sorted" in md
    assert report.exit_code == 2 and report.as_dict()["counts"]["ignored_items"] == 4
    # counts are resources, not rows: the storage account has three changed rows
    assert report.counts()["changed_outside_terraform"] == 3


def test_allowlist_reorder_rule_does_not_hide_real_task_changes():
    refresh = load("dev-workspace.refresh.json")
    job = refresh["resource_drift"][0]["change"]
    job["after"]["task"][0]["task_key"] = "renamed"
    items = analyze("s", refresh, None, load_allowlist())
    renamed = find(items, "databricks_job.forecast", "task[renamed]")
    assert [(i.change, i.ignored_by) for i in renamed] == [("added", "")]
    assert [(i.change, i.ignored_by) for i in find(items, "databricks_job.forecast", "task[train_many]")] == \
        [("removed", "")]


def test_allowlist_entries_need_reasons(tmp_path):
    bad = tmp_path / "a.yaml"
    bad.write_text("attributes:\n  - id: x\n    resource_type: databricks_job\n    attribute: task\n")
    with pytest.raises(UserError, match=r"a.yaml: attributes\[0\]: every entry needs an 'id' and a 'reason'"):
        load_allowlist(bad)
    bad.write_text("attributes:\n  - {id: x, reason: because of reasons, when: sometimes}\n")
    with pytest.raises(UserError, match="when must be one of reordered, case, default, any, not 'sometimes'"):
        load_allowlist(bad)


def test_managed_ids_and_workspace_from_state():
    refresh = load("dev-workspace.refresh.json")
    ids = inv.managed_ids(refresh)
    assert ("databricks_job", "101") in ids
    assert ("azurerm_storage_account", f"{ARM}/Microsoft.Storage/storageAccounts/stmlkdevweu".lower()) in ids
    assert workspace_from_state([refresh])[0] == "https://adb-123.4.azuredatabricks.net"


# ------------------------------------------------------------------ stand-in servers


class Recorder(BaseHTTPRequestHandler):
    requests: list = []
    pages: dict = {}

    def log_message(self, *args):  # keep pytest output clean
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        self.requests.append((url.path, parse_qs(url.query), self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "Bearer test-token":
            return self.reply(401, {"error_code": "UNAUTHENTICATED", "message": "no token"})
        # ARM paths are case-insensitive (the SDK sends /resourcegroups/), Databricks' are not.
        page = self.pages.get(url.path) or {k.lower(): v for k, v in self.pages.items()}.get(url.path.lower())
        if page is None:
            return self.reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": url.path})
        body = page(parse_qs(url.query), self.server.server_address[1])
        return self.reply(*body) if isinstance(body, tuple) else self.reply(200, body)


def arm_resource(rtype, name):
    return {"id": f"{ARM}/{rtype}/{name}", "name": name, "type": rtype, "location": "westeurope", "tags": {}}


class AzureStandIn(Recorder):
    """ARM `Resources - List By Resource Group`: {value: [...], nextLink} pages."""
    requests: list = []

    @staticmethod
    def _list(q, port):
        if q.get("$skiptoken") == ["page2"]:
            return {"value": [arm_resource("Microsoft.Network/networkWatchers", "NetworkWatcher_westeurope"),
                              arm_resource("Microsoft.Compute/virtualMachines", "vm-debug")]}
        return {"value": [arm_resource("Microsoft.Storage/storageAccounts", "STMLKDEVWEU"),  # casing differs from state
                          arm_resource("Microsoft.Databricks/workspaces", "dbw-mlk-dev-weu")],
                "nextLink": f"https://127.0.0.1:{port}/subscriptions/{SUB}/resourceGroups/{RG}/resources"
                            f"?api-version={q['api-version'][0]}&$skiptoken=page2"}

    pages = {f"/subscriptions/{SUB}/resourceGroups/{RG}/resources": _list}


class DatabricksStandIn(Recorder):
    """Jobs 2.2 / Clusters 2.1 (next_page_token pages), Instance Pools and Cluster Policies 2.0."""
    requests: list = []

    @staticmethod
    def _jobs(q, port):
        if q.get("page_token") == ["p2"]:
            return {"jobs": [{"job_id": 202, "settings": {"name": "hand-made-job"}, "created_time": 1}],
                    "has_more": False}
        return {"jobs": [{"job_id": 101, "settings": {"name": "mlk-dev-forecast"}, "created_time": 1}],
                "has_more": True, "next_page_token": "p2"}

    @staticmethod
    def _clusters(q, port):
        if q.get("page_token") == ["c2"]:
            return {"clusters": [{"cluster_id": "0101-job", "cluster_name": "job-101-run-1", "cluster_source": "JOB"}]}
        return {"clusters": [{"cluster_id": "0101-ui", "cluster_name": "alice-debug", "cluster_source": "UI"}],
                "next_page_token": "c2"}

    @staticmethod
    def _models(q, port):
        schema = (q.get("catalog_name", [""])[0], q.get("schema_name", [""])[0])
        if schema == ("ci", "gone"):
            return 404, {"error_code": "SCHEMA_DOES_NOT_EXIST", "message": "Schema 'ci.gone' does not exist."}
        if schema != ("ci", "models"):
            return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"unexpected {schema}"}
        if q.get("page_token") == ["m2"]:
            return {"registered_models": [{"full_name": "ci.models.hand_made", "name": "hand_made",
                                           "catalog_name": "ci", "schema_name": "models", "owner": "alice@example.com"}]}
        return {"registered_models": [{"full_name": "ci.models.forecast", "name": "forecast", "catalog_name": "ci",
                                       "schema_name": "models", "owner": DEPLOYER}], "next_page_token": "m2"}

    @staticmethod
    def _credentials(q, port):
        if q.get("purpose") != ["SERVICE"]:
            return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"unexpected {q}"}
        if q.get("page_token") == ["k2"]:
            return {"credentials": [{"name": "hand_made_cred", "purpose": "SERVICE"}]}
        return {"credentials": [{"name": "cred_mlk_dev_weu_export", "purpose": "SERVICE"}], "next_page_token": "k2"}

    pages = {
        "/api/2.1/unity-catalog/credentials": _credentials,
        "/api/2.1/unity-catalog/models": _models,
        "/api/2.2/jobs/list": _jobs,
        "/api/2.1/clusters/list": _clusters,
        "/api/2.0/instance-pools/list": lambda q, p: {"instance_pools": [
            {"instance_pool_id": "pool-1", "instance_pool_name": "pool-mlk-dev-default"}]},
        "/api/2.0/policies/clusters/list": lambda q, p: {"policies": [
            {"policy_id": "pol-1", "name": "policy-mlk-dev-jobs", "is_default": False},
            {"policy_id": "pol-pc", "name": "Personal Compute", "is_default": True}], "total_count": 2},
    }


@pytest.fixture
def azure_server(tmp_path):
    tls = self_signed(tmp_path / "tls")
    AzureStandIn.requests = []
    server = serve(AzureStandIn, tls)
    yield f"https://127.0.0.1:{server.server_address[1]}", tls / "cert.pem"
    server.shutdown()
    server.server_close()


@pytest.fixture
def databricks_server():
    DatabricksStandIn.requests = []
    server = serve(DatabricksStandIn)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_azure_inventory_pages_through_next_link(azure_server):
    base, cert = azure_server
    cred = Token()
    client = inv.azure_client(cred, SUB, base_url=base, connection_verify=str(cert))
    objs = inv.azure_resources(client, RG)
    assert [o.name for o in objs] == ["STMLKDEVWEU", "dbw-mlk-dev-weu", "NetworkWatcher_westeurope", "vm-debug"]
    assert len(AzureStandIn.requests) == 2 and AzureStandIn.requests[1][1]["$skiptoken"] == ["page2"]
    assert cred.scopes == ["https://management.azure.com/.default"] * len(cred.scopes)
    assert inv.azure_resources(client, "rg-gone") == []


def test_databricks_inventory_pages_and_uses_entra_id_tokens(databricks_server):
    cred = Token()
    w = inv.databricks_client(databricks_server, cred)
    objs = inv.databricks_objects(w)
    assert [(o.type, o.id) for o in objs] == [("job", "101"), ("job", "202"), ("instance_pool", "pool-1"),
                                             ("cluster_policy", "pol-1"), ("cluster", "0101-ui"), ("cluster", "0101-job")]
    assert inv.DATABRICKS_SCOPE in cred.scopes
    paths = [r[0] for r in DatabricksStandIn.requests if r[0].startswith("/api/")]
    assert paths.count("/api/2.2/jobs/list") == 2 and paths.count("/api/2.1/clusters/list") == 2


def test_unmanaged_resource_and_job_in_the_report(azure_server, databricks_server, report_items):
    base, cert = azure_server
    refresh = load("dev-workspace.refresh.json")
    cloud = inv.azure_resources(inv.azure_client(Token(), SUB, base_url=base, connection_verify=str(cert)), RG)
    cloud += inv.databricks_objects(inv.databricks_client(databricks_server, Token()))
    items = unmanaged_items(inv.unmanaged(cloud, inv.managed_ids(refresh)), load_allowlist())
    active = {(i.service, i.type, i.address) for i in items if not i.ignored_by}
    ignored = {(i.service, i.type, i.address): i.ignored_by for i in items if i.ignored_by}
    assert active == {("azure", "Microsoft.Compute/virtualMachines", "vm-debug"), ("databricks", "job", "hand-made-job"),
                      ("databricks", "cluster", "alice-debug"), ("databricks", "instance_pool", "pool-mlk-dev-default")}
    assert ignored == {("azure", "Microsoft.Network/networkWatchers", "NetworkWatcher_westeurope"): "azure-network-watcher",
                       ("databricks", "cluster", "job-101-run-1"): "databricks-job-clusters"}
    md = DriftReport("dev", report_items + items).markdown()
    assert "## Unmanaged objects (not in Terraform state): 4" in md
    assert "| databricks | `job` | `hand-made-job` | `202` |" in md  # service column, not "azure" as the stack


def test_unity_catalog_models_not_in_state_are_unmanaged(databricks_server):
    w = inv.databricks_client(databricks_server, Token())
    models = inv.registered_models(w, "ci", "models")
    assert [(o.type, o.id) for o in models] == [("registered_model", "ci.models.forecast"),
                                               ("registered_model", "ci.models.hand_made")]
    queries = [r[1] for r in DatabricksStandIn.requests if r[0] == "/api/2.1/unity-catalog/models"]
    assert queries[0] == {"catalog_name": ["ci"], "schema_name": ["models"]} and queries[1]["page_token"] == ["m2"]
    assert inv.registered_models(w, "ci", "gone") == []  # the schema's own deletion is the refresh's to report
    # Terraform's id is the three-level name; Unity Catalog names are case-insensitive.
    managed = {("databricks_registered_model", "CI.Models.Forecast")}
    assert [o.id for o in inv.unmanaged(models, managed)] == ["ci.models.hand_made"]
    objs = inv.databricks_objects(w, [("ci", "models")])
    assert [o.id for o in objs if o.type == "registered_model"] == ["ci.models.forecast", "ci.models.hand_made"]


def test_service_credentials_not_in_state_are_unmanaged(databricks_server):
    """The export's token identity (databricks_credential): listed by purpose SERVICE, paged, by name."""
    w = inv.databricks_client(databricks_server, Token())
    creds = inv.service_credentials(w)
    assert [(o.type, o.id) for o in creds] == [("service_credential", "cred_mlk_dev_weu_export"),
                                              ("service_credential", "hand_made_cred")]
    managed = {("databricks_credential", "CRED_mlk_dev_weu_export")}
    assert [o.id for o in inv.unmanaged(creds, managed)] == ["hand_made_cred"]
    assert not [o for o in inv.databricks_objects(w) if o.type == "service_credential"]  # only when asked
    assert len([o for o in inv.databricks_objects(w, credentials=True) if o.type == "service_credential"]) == 2


def test_uc_schemas_to_inventory_come_from_state():
    plan = {"prior_state": {"values": {"root_module": {"resources": [
        {"type": "databricks_schema", "mode": "managed", "values": {"catalog_name": "ci", "name": "models"}},
        {"type": "databricks_registered_model", "mode": "managed",
         "values": {"catalog_name": "ci", "schema_name": "features", "name": "x"}}]}}}}
    assert uc_schemas_from_state([plan]) == [("ci", "features"), ("ci", "models")]


# Every unmanaged rule: (rule, an object it must ignore, a look-alike it must report).
UNMANAGED_PAIRS = [
    ("databricks-job-clusters", inv.CloudObject("databricks", "cluster", "0101-job", "job-101-run-1", "JOB"),
     inv.CloudObject("databricks", "cluster", "0101-ui", "job-101-run-1", "UI")),
    ("databricks-pipeline-clusters",
     inv.CloudObject("databricks", "cluster", "0102-dlt", "dlt-execution-1", "PIPELINE_MAINTENANCE"),
     inv.CloudObject("databricks", "cluster", "0102-api", "dlt-execution-1", "API")),
    ("azure-network-watcher",
     inv.CloudObject("azure", "Microsoft.Network/networkWatchers", f"{ARM}/nw", "NetworkWatcher_westeurope"),
     inv.CloudObject("azure", "Microsoft.Network/networkWatchers/flowLogs", f"{ARM}/nw/fl",
                     "NetworkWatcher_westeurope/all-traffic")),
]


@pytest.mark.parametrize("rule,noise,look_alike", UNMANAGED_PAIRS, ids=[p[0] for p in UNMANAGED_PAIRS])
def test_unmanaged_rule_ignores_its_case_and_reports_the_look_alike(rule, noise, look_alike):
    ignored, reported = unmanaged_items([noise, look_alike], load_allowlist())
    assert (ignored.ignored_by, reported.ignored_by) == (rule, "")
    assert DriftReport("ci", [ignored]).exit_code == 0 and DriftReport("ci", [ignored, reported]).exit_code == 2


def test_every_unmanaged_rule_has_both_cases():
    assert sorted(r.id for r in load_allowlist().unmanaged) == sorted(p[0] for p in UNMANAGED_PAIRS)


def test_databricks_auth_failure_is_an_error_not_a_clean_report(databricks_server):
    class Wrong(Token):
        def get_token(self, *scopes, **kw):
            from azure.core.credentials import AccessToken
            return AccessToken("expired", int(time.time()) + 3600)
    from databricks.sdk.errors import DatabricksError
    with pytest.raises(DatabricksError):
        inv.databricks_objects(inv.databricks_client(databricks_server, Wrong()))


# ------------------------------------------------------------------ real terraform


tf_only = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform binary not on PATH")


def applied_env(tmp_path):
    from mlkit.ops.terraform import Terraform, find_terraform, ordered
    from envconfig.synth_output import read_stacks

    cdktf = make_cdktf_out(tmp_path / "cdktf.out", "ci")
    tf = Terraform(find_terraform())
    for stack in ordered(read_stacks(cdktf)):
        tf.init(stack)
        tf.plan(stack, stack.workdir / "p.tfplan")
        tf.apply(stack, stack.workdir / "p.tfplan")
    return cdktf, tf


@tf_only
def test_clean_environment_exits_0_and_state_edited_out_of_band_exits_2(tmp_path):
    cdktf, _ = applied_env(tmp_path)
    runner = CliRunner()
    args = ["drift", "--env", "ci", "--environments", str(ENVIRONMENTS), "--cdktf-out", str(cdktf),
            "--no-inventory"]
    res = runner.invoke(app, args + ["--out", str(tmp_path / "r0")])
    assert res.exit_code == 0, res.output
    assert "no drift" in res.output
    # Out of band: someone changes the platform's state and drops a resource from it.
    path = cdktf / "stacks/ci-platform/terraform.tfstate"
    state = json.loads(path.read_text())
    storage = next(r for r in state["resources"] if r["name"] == "storage")
    storage["instances"][0]["attributes"]["input"]["value"]["replication"] = "LRS"
    state["resources"] = [r for r in state["resources"] if r["name"] != "network"]
    state["serial"] += 1
    path.write_text(json.dumps(state))
    res = runner.invoke(app, args + ["--out", str(tmp_path / "r1")])
    assert res.exit_code == 2, res.output
    report = json.loads((tmp_path / "r1/drift.json").read_text())
    rows = {(i["address"], i["attribute"]): (i["kind"], i["expected"], i["actual"]) for i in report["items"]}
    assert rows[("terraform_data.storage", "input.replication")] == ("pending", "ZRS", "LRS")
    assert rows[("terraform_data.network", RESOURCE)] == ("pending", "present (in code)", "absent")
    # plan files hold sensitive values in clear: only the two reports are written
    assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == ["drift.json", "drift.md"]


@tf_only
def test_drift_errors_exit_1(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["drift", "--env", "ci", "--environments", str(ENVIRONMENTS),
                              "--cdktf-out", str(tmp_path / "missing"), "--no-inventory", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "manifest.json: not found" in res.output
    res = runner.invoke(app, ["drift", "--env", "nope", "--environments", str(ENVIRONMENTS)])
    assert res.exit_code == 1 and "nope" in res.output
    cdktf = make_cdktf_out(tmp_path / "cdktf.out", "ci")
    (cdktf / "stacks/ci-platform/cdk.tf.json").write_text("{not json")
    res = runner.invoke(app, ["drift", "--env", "ci", "--environments", str(ENVIRONMENTS), "--cdktf-out",
                              str(cdktf), "--no-inventory", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "ci-platform/cdk.tf.json: cannot read the synthesized stack" in res.output


@tf_only
def test_check_combines_stacks_and_inventory(tmp_path):
    cdktf, tf = applied_env(tmp_path)
    cfg = load_environment("ci", ENVIRONMENTS)
    seen = []

    def inventory(plans):
        seen.append(len(plans))
        return [inv.CloudObject("databricks", "job", "999", "orphan")]
    allow = Allowlist(unmanaged=[Rule("orphans-ok", "orphans are fine in this test", service="azure")])
    report = check(cfg, cdktf, tf, tmp_path / "out", allow, {"databricks": inventory})
    assert seen == [2] and report.exit_code == 2
    assert [(i.service, i.address, i.stack) for i in report.active] == [("databricks", "orphan", "")]
