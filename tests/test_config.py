"""Environment files: inheritance, ${VAR} resolution, and every bad-input case naming file + field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from envconfig.cron import CronError, validate_quartz_cron
from envconfig.errors import ConfigError
from envconfig.loader import json_schema, load_all, load_environment
from mlkit.cli import app

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "environments"


@pytest.fixture()
def envdir(tmp_path: Path) -> Path:
    """A copy of the real environments directory to break on purpose."""
    d = tmp_path / "environments"
    shutil.copytree(ENVS, d)
    return d


def problems_of(name: str, directory: Path, env: dict[str, str] | None = None):
    with pytest.raises(ConfigError) as exc:
        load_environment(name, directory, env=env if env is not None else {})
    return exc.value.problems


def test_real_environments_load() -> None:
    cfgs = load_all(ENVS, env={})
    assert set(cfgs) == {"local", "dev", "staging", "prod"}
    assert cfgs["local"].kind == "local" and not cfgs["local"].is_cloud
    assert all(cfgs[e].is_cloud for e in ("dev", "staging", "prod"))


def test_inheritance_overrides_only_what_differs() -> None:
    dev = load_environment("dev", ENVS, env={})
    prod = load_environment("prod", ENVS, env={})
    assert dev.storage.replication == "LRS" and prod.storage.replication == "GZRS"
    # Inherited from base unchanged:
    assert dev.jobs.schedules["forecast"].quartz_cron == prod.jobs.schedules["forecast"].quartz_cron == "0 0 1 ? * SUN"
    assert prod.key_vault.purge_protection and not dev.key_vault.purge_protection
    assert prod.tags["environment"] == "prod" and prod.tags["owner"] == dev.tags["owner"]


def test_variables_resolve_from_environment() -> None:
    sub = "12345678-1234-1234-1234-123456789abc"
    cfg = load_environment("dev", ENVS, env={"ARM_SUBSCRIPTION_ID": sub})
    assert cfg.subscription_id == sub


def test_unresolvable_variable_names_file_field_and_var(envdir: Path) -> None:
    (envdir / "dev.yaml").write_text((envdir / "dev.yaml").read_text() + "name_suffix: ${MLKIT_SUFFIX}\n")
    (p,) = problems_of("dev", envdir)
    assert p.file.endswith("dev.yaml") and p.field == "name_suffix" and "MLKIT_SUFFIX" in p.message
    assert p.line == len((envdir / "dev.yaml").read_text().splitlines())


def test_unknown_key_names_field_and_line(envdir: Path) -> None:
    text = (envdir / "prod.yaml").read_text().replace("  min_count: 2\n", "  min_count: 2\n  max_cont: 9\n")
    (envdir / "prod.yaml").write_text(text)
    (p,) = problems_of("prod", envdir)
    assert p.field == "aks.max_cont" and "unknown field" in p.message
    assert p.file.endswith("prod.yaml")
    assert text.splitlines()[p.line - 1].strip() == "max_cont: 9"


def test_wrong_type(envdir: Path) -> None:
    text = (envdir / "prod.yaml").read_text().replace("min_count: 2", "min_count: two")
    (envdir / "prod.yaml").write_text(text)
    (p,) = problems_of("prod", envdir)
    assert p.field == "aks.min_count" and "integer" in p.message and p.file.endswith("prod.yaml")


def test_error_in_inherited_field_points_at_base_file(envdir: Path) -> None:
    text = (envdir / "base.yaml").read_text().replace("partition_count: 2", "partition_count: 99")
    (envdir / "base.yaml").write_text(text)
    probs = problems_of("staging", envdir)
    assert [(Path(p.file).name, p.field) for p in probs] == [("base.yaml", "event_hubs.partition_count")]
    assert "partition_count: 99" in text.splitlines()[probs[0].line - 1]


def test_missing_required_field(envdir: Path) -> None:
    text = (envdir / "base.yaml").read_text().replace("  deployer: ${MLKIT_DEPLOYER_OBJECT_ID:-11111111-1111-1111-1111-111111111111}\n", "")
    (envdir / "base.yaml").write_text(text)
    probs = problems_of("dev", envdir)
    assert any(p.field == "principals.deployer" and "missing" in p.message for p in probs)


def test_missing_mandatory_tag(envdir: Path) -> None:
    text = (envdir / "base.yaml").read_text().replace("  cost-center: CC-1234\n", "")
    (envdir / "base.yaml").write_text(text)
    (p,) = problems_of("dev", envdir)
    assert p.field == "tags" and "cost-center" in p.message


def test_invalid_cron(envdir: Path) -> None:
    text = (envdir / "dev.yaml").read_text().replace('quartz_cron: "0 0 1 ? * SUN"', 'quartz_cron: "0 1 * * 0"', 1)
    (envdir / "dev.yaml").write_text(text)
    (p,) = problems_of("dev", envdir)
    assert p.field == "jobs.schedules.forecast.quartz_cron" and "6 or 7 fields" in p.message
    assert p.file.endswith("dev.yaml")


def test_unknown_job_in_schedules(envdir: Path) -> None:
    text = (envdir / "dev.yaml").read_text().replace("    classifier:\n      quartz_cron", "    clasifier:\n      quartz_cron")
    (envdir / "dev.yaml").write_text(text)
    probs = problems_of("dev", envdir)
    assert any(p.field == "jobs.schedules" and "clasifier" in p.message for p in probs)


@pytest.mark.parametrize(
    ("yaml_line", "field", "needle"),
    [
        ("name_prefix: mlkitplatform", "name_prefix", "2-10 lowercase"),
        ("name_suffix: abcdef\nname_prefix: mlkitabc", "name_prefix", "storage account name"),
        ("name_prefix: Mlk", "name_prefix", "lowercase"),
        ("location: mars", "location_short", "no short code"),
    ],
)
def test_names_that_break_azure_rules(envdir: Path, yaml_line: str, field: str, needle: str) -> None:
    (envdir / "staging.yaml").write_text((envdir / "staging.yaml").read_text() + yaml_line + "\n")
    (p,) = problems_of("staging", envdir)
    assert p.field == field and needle in p.message and p.file.endswith("staging.yaml")


def test_extends_cycle(envdir: Path) -> None:
    (envdir / "a.yaml").write_text("extends: b\n")
    (envdir / "b.yaml").write_text("extends: a\n")
    (p,) = problems_of("a", envdir)
    assert p.field == "extends" and "cycle" in p.message and "a -> b -> a" in p.message


def test_extends_missing_parent(envdir: Path) -> None:
    (envdir / "qa.yaml").write_text("extends: nosuch\n")
    (p,) = problems_of("qa", envdir)
    assert p.field == "extends" and "nosuch" in p.message


def test_invalid_yaml_has_line(envdir: Path) -> None:
    (envdir / "dev.yaml").write_text("extends: base\naks:\n  vm_size: [unclosed\n")
    (p,) = problems_of("dev", envdir)
    assert "not valid YAML" in p.message and p.line is not None


def test_grant_to_unknown_group(envdir: Path) -> None:
    text = (envdir / "staging.yaml").read_text() + "key_vault:\n  grants:\n    - principal: group:nobody\n      secrets: [get]\n"
    (envdir / "staging.yaml").write_text(text)
    (p,) = problems_of("staging", envdir)
    assert "group:nobody" in p.message and "principals.groups" in p.message


def test_permission_typo_is_rejected(envdir: Path) -> None:
    text = (envdir / "base.yaml").read_text().replace("secrets: [get, list, set, delete, recover]", "secrets: [get, lst]")
    (envdir / "base.yaml").write_text(text)
    probs = problems_of("dev", envdir)
    assert probs and all(p.field.startswith("key_vault.grants.0.secrets") for p in probs)


def test_duplicate_key(envdir: Path) -> None:
    (envdir / "dev.yaml").write_text((envdir / "dev.yaml").read_text() + "storage:\n  replication: GRS\n")
    (p,) = problems_of("dev", envdir)
    assert p.field == "storage" and "duplicate" in p.message


def test_unknown_environment_lists_known() -> None:
    with pytest.raises(ConfigError) as exc:
        load_environment("qa", ENVS, env={})
    assert "known: dev, local, prod, staging" in str(exc.value)


@pytest.mark.parametrize("expr", ["0 0 1 ? * SUN", "0 30 2 ? * MON-FRI", "0 0/15 * * * ?", "0 0 12 L * ?", "0 0 1 ? * 6#3 2027",
                                  "0 0 1 L-3 * ?", "0 0 1 15W * ?"])
def test_quartz_valid(expr: str) -> None:
    validate_quartz_cron(expr)


@pytest.mark.parametrize(
    ("expr", "needle"),
    [("0 0 25 ? * SUN", "outside 0-23"), ("0 0 1 * * SUN", "exactly one"), ("0 0 1 ? * FUNDAY", "not a number"),
     ("* * * * *", "6 or 7"), ("0 0 1 ? * 8", "outside 1-7"), ("0 0/0 1 ? * 1", "positive"),
     ("0 0 1 L-40 * ?", "L-1 to L-30"), ("0 0 1 ? * 1-", "missing an end"), ("0 0 ² ? * 1", "not a number")],
)
def test_quartz_invalid(expr: str, needle: str) -> None:
    with pytest.raises(CronError, match=needle):
        validate_quartz_cron(expr)


def test_committed_schema_is_current() -> None:
    committed = json.loads((ENVS / "schema.json").read_text())
    assert committed == json_schema(), "run: mlkit env schema --out environments/schema.json"


# ---------------------------------------------------------------- CLI


def test_cli_env_show_and_diff() -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["env", "show", "prod", "--format", "json", "--environments", str(ENVS)])
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    assert shown["name"] == "prod" and shown["storage"]["replication"] == "GZRS"
    r = runner.invoke(app, ["env", "diff", "staging", "prod", "--format", "json", "--environments", str(ENVS)])
    assert r.exit_code == 0, r.output
    fields = {row["field"]: row for row in json.loads(r.stdout)}
    assert fields["storage.replication"] == {"field": "storage.replication", "staging": "ZRS", "prod": "GZRS"}
    assert "jobs.schedules.forecast.quartz_cron" not in fields


def test_cli_bad_input_is_a_message_not_a_traceback(envdir: Path) -> None:
    (envdir / "prod.yaml").write_text((envdir / "prod.yaml").read_text() + "bogus: 1\n")
    r = CliRunner().invoke(app, ["env", "show", "prod", "--environments", str(envdir)])
    assert r.exit_code == 2
    assert "prod.yaml" in r.stderr and "bogus" in r.stderr and "unknown field" in r.stderr
    assert "Traceback" not in r.output + r.stderr


def test_private_workspace_needs_private_network(envdir: Path) -> None:
    text = (envdir / "prod.yaml").read_text().replace("  private: true ", "  private: false ")
    (envdir / "prod.yaml").write_text(text)
    (p,) = problems_of("prod", envdir)
    assert "network.private: true" in p.message and p.file.endswith("prod.yaml")


@pytest.mark.parametrize(("line", "needle"), [("databricks_host_prefix: 10.99.0.0/22", "outside address_space"),
                                              ("databricks_container_prefix: 10.42.0.0/22", "overlaps"),
                                              ("private_endpoints_prefix: 10.42.8.0/33", "not a CIDR")])
def test_network_cidrs(envdir: Path, line: str, needle: str) -> None:
    key = line.split(":")[0]
    text = (envdir / "prod.yaml").read_text()
    old = next(x for x in text.splitlines() if x.strip().startswith(key + ":"))
    (envdir / "prod.yaml").write_text(text.replace(old, "  " + line))
    (p,) = problems_of("prod", envdir)
    assert p.field == "network" and needle in p.message


@pytest.mark.parametrize(("old", "new", "section"), [
    ("storage:\n  replication: LRS\n", "storage:\n  replication: LRS\n  public_network_access: false\n", "storage"),
    ("  sku: Basic\n  public_network_access: true\n", "  sku: Basic\n", "container_registry"),  # base says false
])
def test_private_data_services_need_private_network(envdir: Path, old: str, new: str, section: str) -> None:
    # dev has no private network: a service there without public access would be unreachable.
    text = (envdir / "dev.yaml").read_text()
    assert old in text
    (envdir / "dev.yaml").write_text(text.replace(old, new, 1))
    (p,) = problems_of("dev", envdir)
    assert f"{section}.public_network_access: false needs network.private" in p.message


@pytest.mark.parametrize(("line", "field", "needle"), [
    ("principals:\n  deployer_application_id: not-a-uuid\n", "principals.deployer_application_id",
     "not an application (client) id"),
    ("databricks:\n  metastore_id: metastore-1\n", "databricks.metastore_id", "not a metastore id"),
])
def test_data_access_ids_must_be_uuids(envdir: Path, line: str, field: str, needle: str) -> None:
    staging = envdir / "staging.yaml"
    text, section = staging.read_text(), line.split("\n")[0] + "\n"
    # Into the file's own section where it has one (a key twice is a YAML error), else a new one.
    staging.write_text(text.replace(section, line, 1) if section in text else text + line)
    (p,) = problems_of("staging", envdir)
    assert p.file.endswith("staging.yaml") and p.field == field and needle in p.message and p.line


def test_data_access_ids_resolve_from_the_ci_environment() -> None:
    app_id, metastore = "12345678-aaaa-bbbb-cccc-123456789abc", "87654321-aaaa-bbbb-cccc-123456789abc"
    cfg = load_environment("prod", ENVS, env={"MLKIT_DEPLOYER_APPLICATION_ID": app_id,
                                              "MLKIT_DATABRICKS_METASTORE_ID": metastore})
    assert (cfg.principals.deployer_application_id, cfg.databricks.metastore_id) == (app_id, metastore)
    # Object id and application id are different properties of the same principal.
    assert cfg.principals.deployer != app_id


def test_every_environment_names_its_unity_catalog_models() -> None:
    cfgs = load_all(ENVS, env={})
    names = {e: c.registered_models for e, c in cfgs.items()}
    assert names["dev"] == {"forecast": "mlk_dev.ml.forecast", "classifier": "mlk_dev.ml.classifier"}
    assert names["local"]["forecast"] == "mlk_local.ml.forecast"  # the same three levels on sqlite
    catalogs = {c.workloads.tracking.registry.catalog for c in cfgs.values()}
    assert len(catalogs) == len(cfgs)  # one catalog per environment: promotion copies between them
    assert cfgs["prod"].served_models == {"forecast": "mlk_prod.ml.forecast", "classifier": "mlk_prod.ml.classifier"}


@pytest.mark.parametrize("old,new,field,needle", [
    ("      catalog: mlk_dev\n", "      catalog: Mlk-Dev\n", "workloads.tracking.registry.catalog",
     "not a Unity Catalog catalog name"),
    ("      schema: ml\n", "      schema: ml.models\n", "workloads.tracking.registry.schema",
     "not a Unity Catalog schema name"),
    ("      schema: ml\n", "", "workloads.tracking.registry.schema", "a cloud environment names the Unity Catalog"),
    ("  tracking:\n", "  forecast:\n    registered_model: sales/forecast\n  tracking:\n",
     "workloads.forecast.registered_model", "last part of catalog.schema.model"),
    ("  tracking:\n", "  classifier:\n    registered_model: forecast\n  tracking:\n",
     "workloads.classifier.registered_model", "is the forecast job's model too"),
    ("  tracking:\n", "  serving:\n    models: [forecast, churn]\n  tracking:\n",
     "workloads.serving.models.1", "'forecast' or 'classifier'"),
])
def test_bad_model_registry_names_file_line_and_field(envdir: Path, old: str, new: str, field: str,
                                                      needle: str) -> None:
    text = (envdir / "dev.yaml").read_text()
    assert old in text
    (envdir / "dev.yaml").write_text(text.replace(old, new, 1))
    (p,) = problems_of("dev", envdir)
    assert p.file.endswith("dev.yaml") and p.field == field and needle in p.message, p
    assert p.line is not None
