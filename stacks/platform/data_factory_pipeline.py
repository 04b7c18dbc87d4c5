"""The Data Factory pipeline of one job, generated from the job graph (never written by hand).

copy_<table> (Azure SQL -> raw/<folder>/load_date=YYYY-MM-DD/<table>.parquet), one per source
table, then run_<job>: the Databricks Job activity running the graph's job with its job
parameters (raw_path = the partition just copied), then fail_<job> on the failure path (the job
activity failed, or was skipped because a copy failed). Pure: dicts in Data Factory's REST shape,
which the tests deserialize with azure-mgmt-datafactory's own models.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlkit_workloads import graph

# Pipeline parameter: the load date to copy and ingest; empty (the trigger's runs and manual ones)
# means the run's trigger time, so a re-run of a failed day can name that day.
LOAD_DATE_PARAMETER = "load_date"
LOAD_DATE = (f"if(empty(pipeline().parameters.{LOAD_DATE_PARAMETER}), "
             f"formatDateTime(pipeline().TriggerTime, 'yyyy-MM-dd'), pipeline().parameters.{LOAD_DATE_PARAMETER})")
# The raw layout ingest reads (mlkit_workloads.ingest.LOAD_DATE): <folder>/load_date=YYYY-MM-DD/.
PARTITION = "load_date="
FAILED_CODE = "MlkitRunFailed"


@dataclass(frozen=True)
class CopySpec:
    table: str  # schema.table
    folder: str  # folder of the raw container
    sql_dataset: str
    raw_dataset: str

    @property
    def activity(self) -> str:
        return "copy_" + self.table.replace(".", "_")

    @property
    def file_name(self) -> str:
        # A fixed name: re-running a load date overwrites its copy instead of adding a second one.
        return self.table.replace(".", "_") + ".parquet"


@dataclass(frozen=True)
class PipelineSpec:
    job: graph.Job
    copies: tuple[CopySpec, ...]
    ingest_folder: str  # the copied folder the job ingests (its source path)
    raw_root: str  # abfss://raw@<account>.dfs.core.windows.net
    databricks_job_id: str
    databricks_linked_service: str
    copy_retries: int = 2
    job_retries: int = 0
    retry_interval_seconds: int = 300
    copy_timeout_minutes: int = 60
    job_timeout_seconds: int = 4 * 3600

    @property
    def run_activity(self) -> str:
        return f"run_{self.job.name}"

    @property
    def fail_activity(self) -> str:
        return f"fail_{self.job.name}"


def timespan(seconds: int) -> str:
    """Data Factory's activity timeout format, d.hh:mm:ss."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}.{hours:02d}:{minutes:02d}:{secs:02d}"


def _expression(value: str) -> dict:
    return {"value": "@" + value, "type": "Expression"}


def raw_path_expression(spec: PipelineSpec) -> str:
    """The partition this run copied, as the job's raw_path (abfss URL, what Unity Catalog's external
    location on the raw container covers)."""
    return f"concat('{spec.raw_root.rstrip('/')}/{spec.ingest_folder}/{PARTITION}', {LOAD_DATE})"


def job_parameters(spec: PipelineSpec) -> dict:
    """Every job parameter of the graph's job: raw_path from this run, the others their defaults."""
    return {p.name: _expression(raw_path_expression(spec)) if p == graph.RAW_PATH else p.default
            for p in spec.job.parameters}


def _policy(retries: int, timeout: str, interval: int) -> dict:
    return {"timeout": timeout, "retry": retries, "retryIntervalInSeconds": interval,
            "secureInput": False, "secureOutput": False}


def copy_activity(spec: PipelineSpec, copy: CopySpec) -> dict:
    return {
        "name": copy.activity,
        "type": "Copy",
        "description": f"{copy.table} -> raw/{copy.folder}/{PARTITION}<load date>/{copy.file_name}",
        "dependsOn": [],
        "policy": _policy(spec.copy_retries, timespan(spec.copy_timeout_minutes * 60), spec.retry_interval_seconds),
        "userProperties": [],
        "typeProperties": {
            "source": {"type": "AzureSqlSource"},
            "sink": {"type": "ParquetSink", "storeSettings": {"type": "AzureBlobFSWriteSettings"},
                     "formatSettings": {"type": "ParquetWriteSettings"}},
            "enableStaging": False,
        },
        "inputs": [{"referenceName": copy.sql_dataset, "type": "DatasetReference"}],
        "outputs": [{"referenceName": copy.raw_dataset, "type": "DatasetReference",
                     "parameters": {LOAD_DATE_PARAMETER: _expression(LOAD_DATE)}}],
    }


def run_activity(spec: PipelineSpec) -> dict:
    order = " -> ".join(t.key for t in spec.job.topological_order())
    return {
        "name": spec.run_activity,
        "type": "DatabricksJob",
        "description": spec.job.description,
        "dependsOn": [{"activity": c.activity, "dependencyConditions": ["Succeeded"]} for c in spec.copies],
        "policy": _policy(spec.job_retries, timespan(spec.job_timeout_seconds), spec.retry_interval_seconds),
        # Shown in the factory's run monitoring: the tasks the Databricks job runs, in order.
        "userProperties": [{"name": "tasks", "value": order}],
        "linkedServiceName": {"referenceName": spec.databricks_linked_service, "type": "LinkedServiceReference"},
        "typeProperties": {"jobId": spec.databricks_job_id, "jobParameters": job_parameters(spec)},
    }


def fail_activity(spec: PipelineSpec) -> dict:
    return {
        "name": spec.fail_activity,
        "type": "Fail",
        "description": "The failure path: the run ends Failed with a message naming the job.",
        # Skipped: a copy failed, so the job never started.
        "dependsOn": [{"activity": spec.run_activity, "dependencyConditions": ["Failed", "Skipped"]}],
        "userProperties": [],
        "typeProperties": {
            "message": f"{spec.job.name}: a copy or the Databricks job failed; the Databricks run page is linked "
                       f"from {spec.run_activity}'s output",
            "errorCode": FAILED_CODE,
        },
    }


def activities(spec: PipelineSpec) -> list[dict]:
    """In the order they run: the copies, the job, the failure path."""
    if not spec.copies:
        raise ValueError(f"pipeline of {spec.job.name}: no source table to copy")
    if spec.ingest_folder not in {c.folder for c in spec.copies}:
        raise ValueError(f"pipeline of {spec.job.name}: the job ingests {spec.ingest_folder!r}, which no copy writes")
    return [*(copy_activity(spec, c) for c in spec.copies), run_activity(spec), fail_activity(spec)]


def parameters() -> dict[str, str]:
    """Pipeline parameters and their defaults (azurerm_data_factory_pipeline.parameters)."""
    return {LOAD_DATE_PARAMETER: ""}
