"""The allowlist's checks, the never-ignorable categories, and the attribute diff engine."""

from __future__ import annotations

import json

import pytest

from envconfig.errors import UserError
from mlkit.ops.drift import DriftReport, analyze, load_allowlist, protected
from mlkit.ops.plan_diff import SENSITIVE, UNKNOWN, attribute_diffs

PLAN = {"format_version": "1.2", "terraform_version": "1.11.4", "planned_values": {}}


def allowlist(tmp_path, text, variables=None):
    path = tmp_path / "allow.yaml"
    path.write_text(text)
    return load_allowlist(path, variables)


def rule(**fields):
    body = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in fields.items())
    return "attributes:\n  - id: r1\n    reason: a reason long enough\n" + body


@pytest.mark.parametrize("fields,message", [
    ({"resource_type": "databricks_job", "attribute": "access_control", "when": "any"},
     "may not cover identity, permission or network attributes (access_control)"),
    ({"resource_type": "databricks_*", "attribute": "comment", "when": "any"}, "databricks_grants"),
    ({"resource_type": "databricks_job", "attribute": "*", "when": "any"}, "may not cover identity"),
    ({"resource_type": "databricks_job", "attribute": "run_as", "when": "default", "to": "x", "from": ["y"]},
     "when: default and from may not cover"),
    ({"resource_type": "azurerm_*", "attribute": "public_network_access_enabled", "when": "any"},
     "public_network_access_enabled"),
    ({"attribute": "x", "when": "default"}, "a 'default' rule needs 'to'"),
    ({"attribute": "x", "when": "reordered", "to": 1}, "'to' and 'from' belong to 'default' rules"),
    ({"attribute": "x", "when": "sometimes"}, "when must be one of reordered, case, default, any"),
    ({"attribute": "x", "verdict": "ignore"}, "unknown field(s) verdict"),
])
def test_allowlist_refuses_rules_that_could_hide_real_changes(tmp_path, fields, message):
    with pytest.raises(UserError) as e:
        allowlist(tmp_path, rule(**fields))
    assert "allow.yaml: attributes[0]: " in str(e.value) and message in str(e.value)


def test_allowlist_file_errors(tmp_path):
    with pytest.raises(UserError, match="id 'r1' is used twice"):
        allowlist(tmp_path, rule(attribute="a", when="reordered") + rule(attribute="b", when="reordered")[11:])
    with pytest.raises(UserError, match="two sections, attributes and unmanaged"):
        allowlist(tmp_path, "rules: []\n")
    with pytest.raises(UserError, match="cannot read the drift allowlist"):
        allowlist(tmp_path, "attributes: [\n")


def test_a_rule_needing_an_unknown_variable_is_left_out_and_said_so():
    allow = load_allowlist()
    assert "databricks-job-run-as-default" not in {r.id for r in allow.attributes}
    assert any("databricks-job-run-as-default not applied" in n for n in allow.notes)
    allow = load_allowlist(variables={"deployer_application_id": "sp-1"})
    [run_as] = [r for r in allow.attributes if r.id == "databricks-job-run-as-default"]
    assert run_as.to == {"service_principal_name": "sp-1"} and not allow.notes


@pytest.mark.parametrize("rtype,path,values,category", [
    ("databricks_job", "run_as[user_name=alice]", (), "identity"),
    ("databricks_job", "job_cluster[main].new_cluster[0].single_user_name", (), "identity"),
    ("databricks_job", "task[x]", ({"new_cluster": [{"single_user_name": "a"}]},), "identity"),
    ("databricks_grants", "grant[alice].privileges", (), "permission"),
    ("azurerm_role_assignment", "description", (), "permission"),
    ("azurerm_key_vault", "network_acls[0].ip_rules", (), "network"),
    ("azurerm_key_vault", "private_endpoint_subnet_id", (), "network"),
    ("azurerm_storage_account", "tags.owner", (), ""),
    ("azurerm_storage_account", "tags", ({"owner": "x"},), ""),
    ("databricks_job", "max_concurrent_runs", (1, 3), ""),
])
def test_protected_categories(rtype, path, values, category):
    assert protected(rtype, path, *values) == category


def diffs(before, after, bs=None, as_=None, unknown=None):
    return [(d.path, d.change, d.before, d.after) for d in attribute_diffs(
        {"before": before, "after": after, "before_sensitive": bs or {}, "after_sensitive": as_ or {},
         "after_unknown": unknown or {}})]


def test_sensitive_on_either_side_masks_both_and_whole_blocks():
    assert diffs({"p": "old"}, {"p": "new"}, as_={"p": True}) == [("p", "changed", SENSITIVE, SENSITIVE)]
    block = [{"name": "a", "value": "secret-a"}]
    marks = [{"value": True}]
    assert diffs({"env": []}, {"env": block}, as_={"env": marks}) == \
        [("env", "added", [], [{"name": "a", "value": SENSITIVE}])]


def test_unkeyed_reorder_with_a_secret_stays_masked(tmp_path):
    before = {"args": ["--a", "pw-1", "--b"]}
    after = {"args": ["--b", "--a", "pw-1"]}
    [d] = diffs(before, after, bs={"args": [False, True, False]}, as_={"args": [False, False, True]})
    assert d == ("args", "reordered", ["--a", SENSITIVE, "--b"], ["--b", "--a", SENSITIVE])
    allow = allowlist(tmp_path, rule(resource_type="t", attribute="args", when="reordered"))
    rc = {"address": "t.x", "type": "t", "mode": "managed",
          "change": {"actions": ["update"], "before": before, "after": after,
                     "before_sensitive": {"args": [False, True, False]},
                     "after_sensitive": {"args": [False, False, True]}}}
    report = DriftReport("ci", analyze("s", {**PLAN, "resource_drift": [rc]}, None, allow))
    assert report.exit_code == 0 and "pw-1" not in json.dumps(report.as_dict()) + report.markdown()


def test_json_strings_compare_as_json():
    assert diffs({"d": '{"a": 1, "b": [1, 2]}'}, {"d": '{\n "b": [1, 2],\n "a": 1\n}'})[0][1] == "reformatted"
    assert diffs({"d": '[{"name": "x", "v": 1}]'}, {"d": '[{"name": "x", "v": 2}]'}) == [("d[x].v", "changed", 1, 2)]
    assert diffs({"d": "{not json"}, {"d": "{not json "}) == [("d", "changed", "{not json", "{not json ")]


def test_lists_by_identity_and_null_vs_empty():
    acl_b = [{"group_name": "a", "user_name": "", "permission_level": "CAN_VIEW"},
             {"group_name": "", "user_name": "bob", "permission_level": "CAN_RUN"}]
    acl_a = [acl_b[1], dict(acl_b[0], permission_level="CAN_MANAGE")]
    assert diffs({"acl": acl_b}, {"acl": acl_a}) == [
        ("acl[group_name=a].permission_level", "changed", "CAN_VIEW", "CAN_MANAGE"),
        ("acl", "reordered", ["group_name=a", "user_name=bob"], ["user_name=bob", "group_name=a"])]
    assert diffs({"x": None}, {"x": ""}) == [("x", "null-or-empty", None, "")]
    assert diffs({"ips": ["1.1.1.1", "2.2.2.2"]}, {"ips": ["2.2.2.2", "0.0.0.0/0"]}) == [
        ("ips", "removed", "1.1.1.1", None), ("ips", "added", None, "0.0.0.0/0")]


def test_unknown_values_after_apply():
    assert diffs({"id": "1", "n": "a"}, {"n": "b"}, unknown={"id": True}) == [
        ("id", "changed", "1", UNKNOWN), ("n", "changed", "a", "b")]


def test_a_secret_terraform_did_not_mark_is_masked_wherever_it_appears():
    secret = "pa55-word-unmarked-echo"
    rc = {"address": "t.x", "type": "t", "mode": "managed", "change": {
        "actions": ["update"], "before": {"password": secret, "echo": secret, "url": f"https://u:{secret}@h"},
        "after": {"password": "other-secret-value", "echo": None, "url": "https://h"},
        "before_sensitive": {"password": True}, "after_sensitive": {"password": True}, "after_unknown": {"echo": True}}}
    doc = {**PLAN, "resource_changes": [rc], "variables": {"db_password": {"value": "var-secret-123"}},
           "configuration": {"root_module": {"variables": {"db_password": {"sensitive": True}}}}}
    doc["output_changes"] = {"dsn": {"actions": ["update"], "before": "var-secret-123", "after": "x",
                                     "before_sensitive": False, "after_sensitive": False}}
    report = DriftReport("ci", analyze("s", None, doc, load_allowlist()))
    text = json.dumps(report.as_dict()) + report.markdown()
    assert secret not in text and "other-secret-value" not in text and "var-secret-123" not in text
    rows = {i.attribute: i.actual for i in report.items if i.address == "t.x"}
    assert rows == {"password": SENSITIVE, "echo": SENSITIVE, "url": SENSITIVE}
