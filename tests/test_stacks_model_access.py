"""The model-registry access construct on its own: secure defaults, CAN_READ only, refusals."""

from __future__ import annotations

import json
import os

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import cdktn  # noqa: E402
import pytest  # noqa: E402
from cdktn import TerraformStack  # noqa: E402

from stacks.errors import StackInputError  # noqa: E402
from stacks.workspace.model_access import ModelAccessProps, ModelRegistryAccess  # noqa: E402

CLIENT_ID = "55555555-5555-5555-5555-555555555555"


def synth(props: ModelAccessProps) -> dict:
    stack = TerraformStack(cdktn.Testing.app(), "test")
    ModelRegistryAccess(stack, "access", props)
    return json.loads(cdktn.Testing.synth(stack))


def test_principal_without_entitlements_reads_only_the_served_models():
    doc = synth(ModelAccessProps(CLIENT_ID, "id-scoring", models=("forecast", "classifier", "churn"),
                                 readable=("forecast", "churn"), tags={"environment": "test"}))
    sp, = doc["resource"]["databricks_service_principal"].values()
    assert sp["application_id"] == CLIENT_ID and sp["display_name"] == "id-scoring"
    assert not any(sp[k] for k in ("allow_cluster_create", "allow_instance_pool_create", "databricks_sql_access"))
    models = {m["name"]: (a, m) for a, m in doc["resource"]["databricks_mlflow_model"].items()}
    assert sorted(models) == ["churn", "classifier", "forecast"]
    assert models["forecast"][1]["tags"] == [{"key": "environment", "value": "test"}]
    granted = {}
    for p in doc["resource"]["databricks_permissions"].values():
        address = p["registered_model_id"].split(".")[1]
        (acl,) = p["access_control"]
        assert set(acl) == {"permission_level", "service_principal_name"}  # no user/group slipped in
        assert acl["service_principal_name"].endswith(".application_id}")
        granted[address] = acl["permission_level"]
    assert granted == {models["forecast"][0]: "CAN_READ", models["churn"][0]: "CAN_READ"}


def test_refuses_a_served_model_nobody_registers_and_duplicate_names():
    with pytest.raises(StackInputError, match="workloads.serving.registered_model: the scoring service serves "
                                              "other, which no workload registers"):
        ModelRegistryAccess(TerraformStack(cdktn.Testing.app(), "t"), "a",
                            ModelAccessProps(CLIENT_ID, "id", models=("forecast",), readable=("other",)))
    with pytest.raises(StackInputError, match="same model name: m, m"):
        ModelRegistryAccess(TerraformStack(cdktn.Testing.app(), "t"), "a",
                            ModelAccessProps(CLIENT_ID, "id", models=("m", "m"), readable=("m",)))
