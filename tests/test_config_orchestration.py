"""The data_factory and ml_workspace sections: bad settings are a ConfigError naming file and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from envconfig.errors import ConfigError
from envconfig.loader import load_environment

ENVS = Path(__file__).resolve().parents[1] / "environments"


@pytest.fixture()
def envdir(tmp_path: Path) -> Path:
    d = tmp_path / "environments"
    shutil.copytree(ENVS, d)
    return d


def problems(envdir: Path, base: str, extra: str):
    """An environment ``px`` extending ``base`` with ``extra`` (mappings merge key by key)."""
    (envdir / "px.yaml").write_text(f"extends: {base}\ntags: {{environment: px}}\n" + extra)
    with pytest.raises(ConfigError) as exc:
        load_environment("px", envdir, env={})
    return [(p.file.rsplit("/", 1)[-1], p.field, p.message) for p in exc.value.problems]


def test_staging_and_prod_turn_both_on_and_dev_neither():
    for env in ("staging", "prod"):
        cfg = load_environment(env, ENVS, env={})
        assert cfg.data_factory.enabled and cfg.ml_workspace.enabled and cfg.data_factory.jobs == ["forecast"]
    dev = load_environment("dev", ENVS, env={})
    assert not dev.data_factory.enabled and not dev.ml_workspace.enabled


def test_a_schedule_data_factory_cannot_run_names_the_schedule(envdir):
    found = problems(envdir, "prod", 'jobs:\n  schedules:\n    forecast: {quartz_cron: "0 0/15 * * * ?", timezone: UTC}\n')
    assert found == [("px.yaml", "jobs.schedules.forecast",
                      "as a Data Factory trigger: minutes '0/15': Data Factory needs fixed values (0-59, "
                      "comma-separated), not ranges, steps or wildcards")]


def test_the_job_must_ingest_the_folder_the_factory_copies(envdir):
    (field, message), = [(f, m) for _, f, m in problems(
        envdir, "prod", "workloads:\n  forecast:\n    source: {format: parquet, container: raw, path: orders/}\n")]
    assert field == "workloads.forecast.source" and "path one of those folders" in message and "sales" in message


def test_a_job_without_the_raw_path_parameter_cannot_be_orchestrated(envdir):
    found = problems(envdir, "prod", "data_factory:\n  jobs: [monitor]\n")
    assert found[0][1] == "data_factory.jobs" and "take no raw_path parameter" in found[0][2]


def test_a_local_environment_has_no_factory(envdir):
    found = problems(envdir, "local", "data_factory: {enabled: true}\n")
    assert found[0][1:] == ("data_factory.enabled",
                            "a local environment has no Data Factory (mlkit run is the orchestrator)")


def test_source_server_id_and_tables_are_validated(envdir):
    found = problems(envdir, "prod", "data_factory:\n  source:\n    server_id: sql-sales\n    database: sales\n"
                                     "    tables: [{name: sales, folder: Sales/}]\n")
    fields = {f for _, f, _ in found}
    assert {"data_factory.source.server_id", "data_factory.source.tables.0.name",
            "data_factory.source.tables.0.folder"} <= fields


def test_names_of_the_new_systems_follow_the_providers_rules():
    from envconfig.naming import OPTIONAL_RULES, Names, NamingError

    names = load_environment("prod", ENVS, env={}).names
    for kind, rule in OPTIONAL_RULES.items():
        rule.check(getattr(names, kind))  # prod's names pass
    # Key Vault's 24 characters are the tighter limit for any prefix the loader accepts; a longer
    # region code or suffix than it allows still meets these rules with a clear message.
    long = Names("mlkplatfrm", "staging", "weu", "abcdefgh")
    with pytest.raises(NamingError, match=r"storage account name 'stmlmlkplatfrmstagingweuabcdefgh' is 32 characters"):
        OPTIONAL_RULES["ml_storage_account"].check(long.ml_storage_account)
    with pytest.raises(NamingError, match="Azure ML workspace name .* is 39 characters; Azure allows 3-33"):
        OPTIONAL_RULES["ml_workspace"].check(Names("mlkplatfrm", "stagingenv", "wus2", "abcdefgh").ml_workspace)
