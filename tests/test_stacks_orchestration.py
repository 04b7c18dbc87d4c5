"""Data Factory orchestration: the pipeline generated from the job graph, refereed by
azure-mgmt-datafactory's own models; the schedule trigger from the environment's Quartz schedule."""

from __future__ import annotations

import json

import azure.mgmt.datafactory.models as adf
import pytest
from adf_referee import strict, typed
from mlkit_workloads import graph

from envconfig.adf_schedule import ScheduleError, recurrence
from stacks.platform.data_factory_pipeline import (
    FAILED_CODE,
    LOAD_DATE,
    CopySpec,
    PipelineSpec,
    activities,
    timespan,
)
from stacks.workspace.orchestration import DatabricksLinkProps, databricks_type_properties

RAW = "abfss://raw@stmlkprodweu.dfs.core.windows.net"
COPIES = (CopySpec("dbo.sales", "sales", "ds_sql_dbo_sales", "ds_raw_dbo_sales"),
          CopySpec("dbo.calendar", "calendar", "ds_sql_dbo_calendar", "ds_raw_dbo_calendar"))


def spec(job: graph.Job = graph.FORECAST, **over) -> PipelineSpec:
    kw = dict(job=job, copies=COPIES, ingest_folder="sales", raw_root=RAW, databricks_job_id="123",
              databricks_linked_service="ls-databricks", copy_retries=2, job_retries=0, retry_interval_seconds=300,
              copy_timeout_minutes=60, job_timeout_seconds=14400)
    kw.update(over)
    return PipelineSpec(**kw)


def refereed(spec_: PipelineSpec) -> list:
    doc = {"properties": {"activities": activities(spec_), "parameters": {"load_date": {"type": "String",
                                                                                          "defaultValue": ""}}}}
    pipeline = strict(adf.PipelineResource, json.loads(json.dumps(doc)))
    return [typed(adf.Activity, a) for a in pipeline.properties.activities]


def test_pipeline_deserializes_with_the_sdk_models_and_follows_the_job_graph():
    acts = refereed(spec())
    assert [type(a).__name__ for a in acts] == ["CopyActivity", "CopyActivity", "DatabricksJobActivity", "FailActivity"]
    copies, run, fail = acts[:2], acts[2], acts[3]
    # copies first, then the job once every copy succeeded, then the failure path
    assert [c.name for c in copies] == ["copy_dbo_sales", "copy_dbo_calendar"]
    assert all(not c.depends_on for c in copies)
    assert [(d.activity, d.dependency_conditions) for d in run.depends_on] == \
        [("copy_dbo_sales", ["Succeeded"]), ("copy_dbo_calendar", ["Succeeded"])]
    assert [(d.activity, d.dependency_conditions) for d in fail.depends_on] == [("run_forecast", ["Failed", "Skipped"])]
    assert fail.type_properties.error_code == FAILED_CODE
    # the job activity's parameters are exactly the graph's job parameters
    assert run.type_properties.job_id == "123"
    assert set(run.type_properties.job_parameters) == {p.name for p in graph.FORECAST.parameters} == {"raw_path"}
    raw_path = run.type_properties.job_parameters["raw_path"]
    assert raw_path["type"] == "Expression"
    assert raw_path["value"] == f"@concat('{RAW}/sales/load_date=', {LOAD_DATE})"
    # the tasks it runs, in the graph's order (an export task added to the graph shows up here)
    assert run.user_properties[0].value == " -> ".join(t.key for t in graph.FORECAST.topological_order())
    assert run.linked_service_name.reference_name == "ls-databricks"


def test_copy_activities_write_parquet_partitioned_by_load_date_with_retries():
    for copy, act in zip(COPIES, refereed(spec())[:2]):
        assert act.type_properties.source.type == "AzureSqlSource"
        assert act.type_properties.sink.type == "ParquetSink"
        assert act.inputs[0].reference_name == copy.sql_dataset
        out = act.outputs[0]
        assert out.reference_name == copy.raw_dataset
        assert out.parameters["load_date"] == {"value": "@" + LOAD_DATE, "type": "Expression"}
        assert act.policy.retry == 2 and act.policy.retry_interval_in_seconds == 300
        assert act.policy.timeout == "0.01:00:00"


def test_job_timeout_and_retries_come_from_the_settings():
    run = refereed(spec(job_retries=1, job_timeout_seconds=90061))[2]
    assert run.policy.retry == 1 and run.policy.timeout == "1.01:01:01" == timespan(90061)


def test_every_job_with_a_raw_path_parameter_gets_its_pipeline():
    # the classifier's ingest takes raw_path too: its pipeline follows its own graph
    run = refereed(spec(graph.CLASSIFIER, copies=COPIES[:1]))[1]
    assert run.user_properties[0].value == "ingest -> train_classifier -> promote"


def test_a_job_ingesting_a_folder_no_copy_writes_is_refused():
    with pytest.raises(ValueError, match="ingests 'orders', which no copy writes"):
        activities(spec(ingest_folder="orders"))


def test_the_referee_rejects_what_azure_would():
    doc = {"properties": {"activities": [{"name": "run", "type": "DatabricksJob",
                                          "typeProperties": {"jobID": "1"}}]}}
    with pytest.raises(AssertionError, match="jobID: DatabricksJobActivityTypeProperties has no such field"):
        strict(adf.PipelineResource, doc)
    with pytest.raises(AssertionError, match="type 'DatabricksJobs' is no Activity"):
        strict(adf.PipelineResource, {"properties": {"activities": [{"name": "x", "type": "DatabricksJobs"}]}})


def test_databricks_linked_service_is_msi_with_a_credential_and_no_token():
    props = DatabricksLinkProps(workspace_url="https://adb-1.azuredatabricks.net", workspace_resource_id="/subscriptions/x",
                                credential_name="cred-databricks", instance_pool_id="pool-1",
                                spark_version="15.4.x-scala2.12", min_workers=1, max_workers=4)
    ls = strict(adf.LinkedServiceResource, {"properties": {"type": "AzureDatabricks",
                                                           "typeProperties": databricks_type_properties(props)}})
    service = typed(adf.LinkedService, ls.properties)
    tp = service.type_properties
    assert type(service).__name__ == "AzureDatabricksLinkedService"
    assert tp.authentication == "MSI" and tp.credential.reference_name == "cred-databricks"
    assert tp.access_token is None and tp.instance_pool_id == "pool-1"


@pytest.mark.parametrize("cron,tz,expected", [
    ("0 0 1 ? * SUN", "Europe/Amsterdam", ("Week", (1,), (0,), "W. Europe Standard Time", ("Sunday",), ())),
    ("0 30 2 ? * MON,FRI", "UTC", ("Week", (2,), (30,), "UTC", ("Monday", "Friday"), ())),
    ("0 0 4 * * ?", "Europe/Amsterdam", ("Day", (4,), (0,), "W. Europe Standard Time", (), ())),
    ("0 15 6,18 1,15 * ?", "America/New_York", ("Month", (6, 18), (15,), "Eastern Standard Time", (), (1, 15))),
])
def test_quartz_schedules_become_trigger_recurrences(cron, tz, expected):
    r = recurrence(cron, tz)
    assert (r.frequency, r.hours, r.minutes, r.time_zone, r.days_of_week, r.days_of_month) == expected


@pytest.mark.parametrize("cron,tz,words", [
    ("30 0 1 ? * SUN", "UTC", "seconds field must be 0"),
    ("0 0/15 * * * ?", "UTC", "minutes '0/15': Data Factory needs fixed values"),
    ("0 0 1 ? * MON-FRI", "UTC", "not ranges"),
    ("0 0 1 ? 1 SUN", "UTC", "no month or year restriction"),
    ("0 0 1 ? * SUN", "Asia/Kathmandu", "has no Windows id"),
])
def test_schedules_without_a_trigger_equivalent_are_refused(cron, tz, words):
    with pytest.raises(ScheduleError, match=words):
        recurrence(cron, tz)
