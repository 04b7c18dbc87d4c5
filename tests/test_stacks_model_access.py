"""Unity Catalog registered models on their own: schema, models, least-privilege grants, refusals.

Privilege names are checked against the Databricks SDK's own ``catalog.Privilege`` enum (the
provider passes them through unvalidated: catalog/resource_grants.go), and every attribute we
write must be an argument of the typed provider binding.
"""

from __future__ import annotations

import inspect
import json
import os

os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import cdktn  # noqa: E402
import pytest  # noqa: E402
from cdktn import TerraformStack  # noqa: E402
from cdktn_provider_databricks import catalog, grant, grants, registered_model, schema  # noqa: E402
from databricks.sdk.service.catalog import Privilege  # noqa: E402

from stacks.errors import StackInputError  # noqa: E402
from stacks.workspace.model_access import ModelAccessProps, UnityCatalogModels  # noqa: E402

OWNER = "66666666-6666-6666-6666-666666666666"
CLIENT_ID = "55555555-5555-5555-5555-555555555555"
BINDINGS = {"databricks_catalog": catalog.Catalog, "databricks_schema": schema.Schema,
            "databricks_registered_model": registered_model.RegisteredModel, "databricks_grants": grants.Grants,
            "databricks_grant": grant.Grant}


def props(**kw) -> ModelAccessProps:
    base = dict(catalog="mlk_t", schema="ml", models={m: f"mlk_t.ml.{m}" for m in ("forecast", "classifier", "churn")},
                served=("forecast", "churn"), owner_application_id=OWNER, scoring_application_id=CLIENT_ID,
                scoring_display_name="id-scoring")
    return ModelAccessProps(**{**base, **kw})


def synth(p: ModelAccessProps) -> dict:
    stack = TerraformStack(cdktn.Testing.app(), "test")
    UnityCatalogModels(stack, "models", p)
    return json.loads(cdktn.Testing.synth(stack))["resource"]


def test_models_in_the_schema_owned_by_the_run_as_principal_and_executable_only_by_the_scoring_principal():
    res = synth(props())
    assert "databricks_mlflow_model" not in res and "databricks_permissions" not in res
    sp, = res["databricks_service_principal"].values()
    assert not any(sp[k] for k in ("allow_cluster_create", "allow_instance_pool_create", "databricks_sql_access"))
    (schema_addr, sch), = res["databricks_schema"].items()
    assert (sch["catalog_name"], sch["name"]) == ("mlk_t", "ml")
    models = {m["name"]: (a, m) for a, m in res["databricks_registered_model"].items()}
    assert sorted(models) == ["churn", "classifier", "forecast"]
    for _, m in models.values():
        assert m["owner"] == OWNER and m["catalog_name"] == "mlk_t"
        assert m["schema_name"] == f"${{databricks_schema.{schema_addr}.name}}"
    by_target = {}
    for g in res["databricks_grants"].values():
        target = next(k for k in ("catalog", "schema", "model") if k in g)
        by_target[(target, g[target])] = {x["principal"]: x["privileges"] for x in g["grant"]}
    scoring = f"${{databricks_service_principal.{next(iter(res['databricks_service_principal']))}.application_id}}"
    assert by_target[("schema", f"${{databricks_schema.{schema_addr}.id}}")] == {OWNER: ["USE_SCHEMA"],
                                                                                 scoring: ["USE_SCHEMA"]}
    model_grants = {k[1]: v for k, v in by_target.items() if k[0] == "model"}
    assert model_grants == {f"${{databricks_registered_model.{models[m][0]}.id}}": {scoring: ["EXECUTE"]}
                            for m in ("forecast", "churn")}
    # An existing catalog: only USE_CATALOG added per principal, non-authoritatively, no catalog resource.
    assert "databricks_catalog" not in res
    assert sorted((g["catalog"], g["principal"], tuple(g["privileges"])) for g in res["databricks_grant"].values()) \
        == sorted([("mlk_t", OWNER, ("USE_CATALOG",)), ("mlk_t", scoring, ("USE_CATALOG",))])


def test_a_created_catalog_is_bound_to_the_workspace_and_its_grants_are_authoritative():
    res = synth(props(create_catalog=True, catalog_storage_root="abfss://models@st.dfs.core.windows.net/uc"))
    (addr, cat), = res["databricks_catalog"].items()
    assert cat["isolation_mode"] == "ISOLATION_MODE_ISOLATED" and cat["storage_root"].endswith("/uc")
    assert "databricks_grant" not in res
    cg = [g for g in res["databricks_grants"].values() if "catalog" in g]
    assert len(cg) == 1 and cg[0]["catalog"] == f"${{databricks_catalog.{addr}.name}}"
    assert all(x["privileges"] == ["USE_CATALOG"] for x in cg[0]["grant"]) and len(cg[0]["grant"]) == 2


def test_privileges_are_the_sdks_and_attributes_are_binding_arguments():
    res = synth(props(create_catalog=True, catalog_storage_root="abfss://models@st.dfs.core.windows.net/uc"))
    res_existing = synth(props())
    known = {p.value for p in Privilege}
    for doc in (res, res_existing):
        for rtype, items in doc.items():
            if rtype not in BINDINGS:
                continue
            args = set(inspect.signature(BINDINGS[rtype].__init__).parameters)
            for body in items.values():
                assert set(body) - {"//"} <= args | {"depends_on"}, (rtype, set(body) - args)
                for g in body.get("grant", [body] if rtype == "databricks_grant" else []):
                    assert set(g["privileges"]) <= known, g


def test_refusals():
    with pytest.raises(StackInputError, match="serves other, which no workload registers"):
        synth(props(served=("other",)))
    with pytest.raises(StackInputError, match="models must live in mlk_t.ml: x.ml.forecast"):
        synth(props(models={"forecast": "x.ml.forecast"}, served=("forecast",)))
    with pytest.raises(StackInputError, match="needs a storage root"):
        synth(props(create_catalog=True))
