"""orchestration-ml rules beyond the one pass/fail pair each (tests/test_policies_rules.py has those)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from cdktn import App, TerraformStack  # noqa: E402
from cdktn_provider_azurerm.provider import AzurermProvider  # noqa: E402
from policy_cases_orchestration import (  # noqa: E402
    ADF_001_FAILURES,
    DEV,
    PROD,
    databricks_link,
    factory,
    insights,
    lake,
    ml_workspace,
)

from policies.engine import PolicyRun  # noqa: E402


def findings(tmp_path, cfg, *builds):
    app = App(outdir=str(tmp_path), skip_validation=True)
    run = PolicyRun()
    stack = TerraformStack(app, "case")
    AzurermProvider(stack, "azurerm", features=[{}])
    for build in builds:
        build(stack)
    run.hook(stack, cfg)
    app.synth()
    return run.evaluate().findings


@pytest.mark.parametrize("case", sorted(ADF_001_FAILURES))
def test_every_secret_shape_in_a_linked_service_is_found(tmp_path, case):
    build, words = ADF_001_FAILURES[case]
    hits = [f.message for f in findings(tmp_path, PROD, build) if f.rule_id == "MLK-ADF-001"]
    assert any(words in m for m in hits), hits


def test_identity_only_linked_services_pass(tmp_path):
    assert not [f for f in findings(tmp_path, PROD, lake, databricks_link) if f.rule_id == "MLK-ADF-001"]


def test_public_endpoints_are_allowed_where_the_environment_is_not_private(tmp_path):
    assert not DEV.network.private
    found = findings(tmp_path, DEV,
                     lambda s: factory(s, public_network_enabled=True, managed_virtual_network_enabled=False,
                                       name="adf-mlk-dev-weu"),
                     lambda s: ml_workspace(s, public_network_access_enabled=True, managed_network=None,
                                            high_business_impact=False, name="mlw-mlk-dev-weu"),
                     lambda s: insights(s, internet_query_enabled=True, name="appi-mlk-dev-weu"))
    ids = {f.rule_id for f in found}
    assert not ids & {"MLK-ADF-002", "MLK-AML-001", "MLK-AML-003", "MLK-APPI-003"}, ids
