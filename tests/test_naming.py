"""Naming module: CAF names, Azure rules at their edges, tags."""

from __future__ import annotations

import pytest

from envconfig.naming import RULES, NamingError, names_for, tags_for


def test_caf_names() -> None:
    n = names_for("mlk", "prod", "westeurope")
    assert n.resource_group == "rg-mlk-prod-weu"
    assert n.storage_account == "stmlkprodweu"
    assert n.key_vault == "kv-mlk-prod-weu"
    assert n.container_registry == "crmlkprodweu"
    assert n.kubernetes_cluster == "aks-mlk-prod-weu"
    assert n.eventhub_namespace == "evhns-mlk-prod-weu"
    assert n.databricks_workspace == "dbw-mlk-prod-weu"
    assert n.platform_stack == "prod-platform" and n.workspace_stack == "prod-workspace"
    n.validate()


def test_suffix_goes_into_every_global_name() -> None:
    n = names_for("mlk", "dev", "westeurope", suffix="7f")
    assert n.storage_account == "stmlkdevweu7f" and n.key_vault == "kv-mlk-dev-weu-7f"


def test_storage_account_at_the_24_character_edge() -> None:
    # st + 10 + 7 + 3 + ... : prefix/env/suffix lengths that land exactly on 24 pass, 25 fail.
    ok = names_for("abcdefghij", "envname", "westeurope", suffix="ab")
    assert len(ok.storage_account) == 24
    RULES["storage_account"].check(ok.storage_account)
    too_long = names_for("abcdefghij", "envname", "westeurope", suffix="abc")
    with pytest.raises(NamingError, match="storage account name .* is 25 characters"):
        too_long.validate()
    # The Key Vault name (dashed) hits its own 24-character limit sooner: validate() says which.
    with pytest.raises(NamingError, match="key vault name"):
        ok.validate()


@pytest.mark.parametrize(
    ("rule", "name", "ok"),
    [
        ("key_vault", "kv-a-b", True), ("key_vault", "kv--ab", False), ("key_vault", "1kv-ab", False),
        ("key_vault", "kv-ab-", False), ("key_vault", "kv", False), ("storage_account", "stABC", False),
        ("container_registry", "cr-ab", False), ("container_registry", "crab", False),
        ("container_registry", "crabc", True), ("eventhub_namespace", "evhns-", False),
    ],
)
def test_rules(rule: str, name: str, ok: bool) -> None:
    if ok:
        RULES[rule].check(name)
    else:
        with pytest.raises(NamingError):
            RULES[rule].check(name)


@pytest.mark.parametrize(("prefix", "env", "field"), [("MLK", "dev", "name_prefix"), ("m", "dev", "name_prefix"),
                                                      ("mlk", "Dev", "name"), ("mlk", "dev-1", "name")])
def test_bad_prefix_or_env(prefix: str, env: str, field: str) -> None:
    with pytest.raises(NamingError) as exc:
        names_for(prefix, env, "westeurope")
    assert exc.value.field == field


def test_unknown_region_needs_short_code() -> None:
    with pytest.raises(NamingError) as exc:
        names_for("mlk", "dev", "brazilsouth")
    assert exc.value.field == "location_short"
    assert names_for("mlk", "dev", "brazilsouth", location_short="brs").resource_group == "rg-mlk-dev-brs"


def test_tags_carry_mandatory_and_provenance() -> None:
    t = tags_for({"owner": "a@b.c", "cost-center": "CC1"}, "dev")
    assert t == {"cost-center": "CC1", "environment": "dev", "managed-by": "mlkit", "owner": "a@b.c"}
