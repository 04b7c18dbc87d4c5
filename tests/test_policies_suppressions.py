"""Suppressions: with a reason they waive, without one (or expired) they are errors, unmatched they are stale."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from cdktn import App, TerraformStack  # noqa: E402
from constructs import Construct  # noqa: E402
from test_policies_rules import PROD, storage  # noqa: E402

from envconfig.errors import ConfigError  # noqa: E402
from envconfig.loader import load_environment  # noqa: E402
from envconfig.suppressions import Suppression  # noqa: E402
from policies.engine import PolicyRun  # noqa: E402
from policies.suppressions import suppress  # noqa: E402
from policies.model import Finding  # noqa: E402

TODAY = dt.date(2026, 6, 1)
REASON = "Public read of the demo container is the point of the demo (ticket PLAT-42)."


def run_case(tmp_path, suppressions=(), construct_sups=(), today=TODAY, extra=(), checkov_envs=()):
    """One stack 'case' with a storage account that allows public blobs (MLK-ST-003) inside a 'data' group."""
    cfg = PROD.model_copy(update={"suppressions": list(suppressions)})
    tmp_path.mkdir(parents=True, exist_ok=True)
    app = App(outdir=str(tmp_path / "out"), skip_validation=True)
    stack = TerraformStack(app, "case")
    group = Construct(stack, "data")
    storage(group, allow_nested_items_to_be_public=True)
    for target, rule, reason, expires in construct_sups:
        suppress({"stack": stack, "group": group, "account": group.node.find_child("storage")}[target],
                 rule, reason, expires)
    run = PolicyRun(today=today)
    run.hook(stack, cfg)
    app.synth()
    return run, run.evaluate(extra, checkov_envs=checkov_envs)


def by_rule(report, rule_id):
    return [f for f in report.findings if f.rule_id == rule_id]


def test_unsuppressed_violation_blocks(tmp_path):
    _, report = run_case(tmp_path)
    [f] = by_rule(report, "MLK-ST-003")
    assert f.blocking and not report.ok
    assert f.path == "case/data/storage" and f.address.startswith("azurerm_storage_account.data_storage_")


@pytest.mark.parametrize("target", ["case/data/storage", "case/data/*", "azurerm_storage_account.*", "*"])
def test_environment_suppression_with_reason_waives(tmp_path, target):
    _, report = run_case(tmp_path, [Suppression(rule="MLK-ST-003", target=target, reason=REASON)])
    [f] = by_rule(report, "MLK-ST-003")
    assert f.suppressed and not f.blocking
    assert f.suppressed_by.reason == REASON and f.suppressed_by.origin == "prod.yaml"
    assert report.ok
    assert not by_rule(report, "MLK-SUP-003")


@pytest.mark.parametrize("where", ["account", "group", "stack"])
def test_construct_suppression_with_reason_waives_it_and_its_children(tmp_path, where):
    _, report = run_case(tmp_path, construct_sups=[(where, "MLK-ST-003", REASON, None)])
    [f] = by_rule(report, "MLK-ST-003")
    assert f.suppressed and f.suppressed_by.on_construct and report.ok


def test_construct_suppression_without_reason_is_an_error_and_does_not_apply(tmp_path):
    _, report = run_case(tmp_path, construct_sups=[("account", "MLK-ST-003", "", None)])
    [sup] = by_rule(report, "MLK-SUP-001")
    assert sup.blocking and "has no reason" in sup.message and sup.path == "case/data/storage"
    [f] = by_rule(report, "MLK-ST-003")
    assert f.blocking


def test_construct_suppression_with_a_too_short_reason_is_an_error(tmp_path):
    _, report = run_case(tmp_path, construct_sups=[("account", "MLK-ST-003", "ok", None)])
    assert by_rule(report, "MLK-SUP-001") and by_rule(report, "MLK-ST-003")[0].blocking


def test_environment_suppression_without_reason_is_rejected_when_loading(tmp_path):
    envs = tmp_path / "envs"
    shutil.copytree("environments", envs)
    with (envs / "prod.yaml").open("a") as fh:
        fh.write("suppressions:\n  - rule: MLK-ST-003\n    target: '*'\n")
    with pytest.raises(ConfigError) as e:
        load_environment("prod", envs, env={})
    [p] = e.value.problems
    assert p.field == "suppressions.0.reason" and p.file.endswith("prod.yaml") and p.line


def test_environment_suppression_with_blank_reason_is_rejected():
    with pytest.raises(ValueError, match="reason"):
        Suppression(rule="MLK-ST-003", target="*", reason="          ")


@pytest.mark.parametrize("source", ["environment", "construct"])
def test_expired_suppression_is_an_error_and_does_not_apply(tmp_path, source):
    if source == "environment":
        _, report = run_case(tmp_path, [Suppression(rule="MLK-ST-003", target="*", reason=REASON,
                                                    expires="2026-05-31")])
    else:
        _, report = run_case(tmp_path, construct_sups=[("account", "MLK-ST-003", REASON, "2026-05-31")])
    [exp] = by_rule(report, "MLK-SUP-002")
    assert exp.blocking and "expired on 2026-05-31" in exp.message
    assert by_rule(report, "MLK-ST-003")[0].blocking


def test_suppression_expiring_today_still_applies(tmp_path):
    _, report = run_case(tmp_path, [Suppression(rule="MLK-ST-003", target="*", reason=REASON, expires="2026-06-01")])
    assert report.ok and not by_rule(report, "MLK-SUP-002")


def test_stale_suppression_is_reported_but_does_not_fail(tmp_path):
    _, report = run_case(tmp_path, [
        Suppression(rule="MLK-ST-003", target="*", reason=REASON),
        Suppression(rule="MLK-KV-002", target="case/nothing-here", reason="Vault moved to another stack (PLAT-7)."),
    ])
    [stale] = by_rule(report, "MLK-SUP-003")
    assert stale.severity == "warning" and "MLK-KV-002" in stale.message and "matches no finding" in stale.message
    assert report.ok


def test_stale_construct_suppression_is_reported(tmp_path):
    _, report = run_case(tmp_path, construct_sups=[("account", "MLK-ST-003", REASON, None),
                                                   ("group", "MLK-ST-001", REASON, None)])
    [stale] = by_rule(report, "MLK-SUP-003")
    assert "MLK-ST-001" in stale.message and stale.path == "case/data"


def test_unknown_rule_id_is_an_error(tmp_path):
    _, report = run_case(tmp_path, [Suppression(rule="MLK-ST-999", target="*", reason=REASON)])
    [bad] = by_rule(report, "MLK-SUP-004")
    assert "unknown rule 'MLK-ST-999'" in bad.message and bad.blocking


def _checkov_finding(rule_id: str) -> Finding:
    return Finding(rule_id, "error", "checkov check", f"({rule_id})", "prod", "case", "case/data/storage",
                   "azurerm_storage_account.x", source="checkov")


def test_our_suppression_also_waives_the_mapped_checkov_check_on_the_same_resource(tmp_path):
    sup = Suppression(rule="MLK-ST-003", target="case/data/storage", reason=REASON)
    _, report = run_case(tmp_path, [sup], extra=[_checkov_finding("CKV_AZURE_190"), _checkov_finding("CKV_AZURE_33")],
                         checkov_envs=["prod"])
    mapped, unrelated = by_rule(report, "CKV_AZURE_190")[0], by_rule(report, "CKV_AZURE_33")[0]
    assert mapped.suppressed and mapped.suppressed_by.reason == REASON
    assert unrelated.blocking


def test_checkov_findings_are_suppressible_with_a_reason(tmp_path):
    sup = Suppression(rule="CKV_AZURE_33", target="azurerm_storage_account.*", reason="Queue service unused (PLAT-9).")
    _, report = run_case(tmp_path, [sup, Suppression(rule="MLK-ST-003", target="*", reason=REASON)],
                         extra=[_checkov_finding("CKV_AZURE_33")], checkov_envs=["prod"])
    assert by_rule(report, "CKV_AZURE_33")[0].suppressed and report.ok


def test_stale_checkov_suppression_only_reported_when_checkov_ran(tmp_path):
    sups = [Suppression(rule="CKV_AZURE_33", target="case/data/storage", reason="Queue service unused (PLAT-9)."),
            Suppression(rule="MLK-ST-003", target="*", reason=REASON)]
    _, without = run_case(tmp_path / "a", sups)
    _, ran = run_case(tmp_path / "b", sups, checkov_envs=["prod"])
    assert not by_rule(without, "MLK-SUP-003")
    assert "CKV_AZURE_33" in by_rule(ran, "MLK-SUP-003")[0].message


def test_environment_wide_suppressions_become_checkov_skip_checks(tmp_path):
    run, _ = run_case(tmp_path, [
        Suppression(rule="MLK-ST-003", target="*", reason=REASON),
        Suppression(rule="CKV_AZURE_33", target="*", reason="Queue service unused (PLAT-9)."),
        Suppression(rule="CKV_AZURE_35", target="case/data/storage", reason="Per-resource: applied after the run."),
        Suppression(rule="CKV_AZURE_36", target="*", reason=REASON, expires="2026-01-01"),  # expired: not passed
    ])
    assert run.checkov_skips("prod") == ["CKV2_AZURE_47", "CKV_AZURE_190", "CKV_AZURE_33"]
