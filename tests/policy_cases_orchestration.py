"""Pass/fail fixtures of the orchestration-ml rules (Data Factory, Azure ML, Application Insights).

tests/test_policies_rules.py merges CASES into its own: every rule gets one passing and one failing
fixture stack, built from the real provider classes, synthesized once with the other packs'.
"""

from __future__ import annotations

import json

from cdktn_provider_azurerm.application_insights import ApplicationInsights
from cdktn_provider_azurerm.data_factory import DataFactory
from cdktn_provider_azurerm.data_factory_linked_custom_service import DataFactoryLinkedCustomService
from cdktn_provider_azurerm.data_factory_linked_service_azure_sql_database import (
    DataFactoryLinkedServiceAzureSqlDatabase,
)
from cdktn_provider_azurerm.data_factory_linked_service_data_lake_storage_gen2 import (
    DataFactoryLinkedServiceDataLakeStorageGen2,
)
from cdktn_provider_azurerm.data_factory_pipeline import DataFactoryPipeline
from cdktn_provider_azurerm.machine_learning_workspace import MachineLearningWorkspace
from mlkit_workloads import graph

from envconfig.loader import load_environment
from envconfig.naming import tags_for
from stacks.platform.data_factory_pipeline import CopySpec, PipelineSpec, activities
from stacks.workspace.orchestration import DatabricksLinkProps, databricks_type_properties

PROD = load_environment("prod", "environments", env={})
DEV = load_environment("dev", "environments", env={})
N = PROD.names
O = N
TAGS = tags_for(PROD.tags, "prod")
RG = {"resource_group_name": N.resource_group, "location": "westeurope"}
ADF_ID = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.DataFactory/factories/adf"
SQL = "Integrated Security=False;Encrypt=True;Data Source=sql-sales.database.windows.net;Initial Catalog=sales"


def factory(s, **over):
    kw = dict(name=O.data_factory, **RG, identity={"type": "SystemAssigned"}, public_network_enabled=False,
              managed_virtual_network_enabled=True, tags=TAGS)
    kw.update(over)
    DataFactory(s, "factory", **kw)


def sql(s, **over):
    kw = dict(name=O.adf_linked_service_sql, data_factory_id=ADF_ID, connection_string=SQL, use_managed_identity=True)
    kw.update(over)
    DataFactoryLinkedServiceAzureSqlDatabase(s, "sql", **kw)


def lake(s, **over):
    kw = dict(name=O.adf_linked_service_raw, data_factory_id=ADF_ID, url=f"https://{N.storage_account}.dfs.core.windows.net",
              use_managed_identity=True)
    kw.update(over)
    DataFactoryLinkedServiceDataLakeStorageGen2(s, "lake", **kw)


LINK = DatabricksLinkProps(workspace_url="https://adb-1.azuredatabricks.net", workspace_resource_id="/subscriptions/x",
                           credential_name=O.adf_credential, instance_pool_id="pool-1",
                           spark_version="15.4.x-scala2.12", min_workers=1, max_workers=4)


def databricks_link(s, **props):
    doc = {**databricks_type_properties(LINK), **props}
    DataFactoryLinkedCustomService(s, "databricks", name=O.adf_linked_service_databricks, data_factory_id=ADF_ID,
                                   type="AzureDatabricks", type_properties_json=json.dumps(doc))


SPEC = PipelineSpec(job=graph.FORECAST, copies=(CopySpec("dbo.sales", "sales", "ds_sql", "ds_raw"),),
                    ingest_folder="sales", raw_root="abfss://raw@st.dfs.core.windows.net", databricks_job_id="1",
                    databricks_linked_service=O.adf_linked_service_databricks)


def pipeline(s, acts=None):
    DataFactoryPipeline(s, "pipeline", name=O.adf_pipeline("forecast"), data_factory_id=ADF_ID,
                        activities_json=json.dumps(activities(SPEC) if acts is None else acts))


def no_retries_no_failure_path(s):
    acts = activities(SPEC)[:-1]  # without the Fail activity
    acts[0]["policy"]["retry"] = 0
    pipeline(s, acts)


def ml_workspace(s, **over):
    kw = dict(name=O.ml_workspace, **RG, application_insights_id="/subscriptions/x/appi", key_vault_id="/subscriptions/x/kv",
              storage_account_id="/subscriptions/x/st", identity={"type": "SystemAssigned"},
              public_network_access_enabled=False, managed_network={"isolation_mode": "AllowOnlyApprovedOutbound"},
              storage_account_access_type="Identity", high_business_impact=True, tags=TAGS)
    kw.update(over)
    MachineLearningWorkspace(s, "mlw", **kw)


def insights(s, **over):
    kw = dict(name=O.application_insights, **RG, application_type="web", workspace_id="/subscriptions/x/log",
              local_authentication_enabled=False, internet_query_enabled=False, tags=TAGS)
    kw.update(over)
    ApplicationInsights(s, "appi", **kw)


# rule id -> (environment, passing fixture, failing fixture, words the failure message contains)
CASES = {
    "MLK-ADF-001": (PROD, sql, lambda s: sql(s, use_managed_identity=None, connection_string=SQL + ";Password=hunter2"),
                    "connection_string embeds a password"),
    "MLK-ADF-002": (PROD, factory, lambda s: factory(s, public_network_enabled=True),
                    "public_network_enabled is true; this environment is private"),
    "MLK-ADF-003": (PROD, sql, lambda s: sql(s, connection_string=SQL.replace("Encrypt=True;", "")),
                    "does not set Encrypt=True"),
    "MLK-ADF-004": (PROD, pipeline, no_retries_no_failure_path, "no failure path"),
    "MLK-AML-001": (PROD, ml_workspace, lambda s: ml_workspace(s, public_network_access_enabled=True),
                    "public_network_access_enabled is true; this environment is private"),
    "MLK-AML-002": (PROD, ml_workspace, lambda s: ml_workspace(s, storage_account_access_type="AccessKey"),
                    '"AccessKey"; it must be Identity'),
    "MLK-AML-003": (PROD, ml_workspace, lambda s: ml_workspace(s, high_business_impact=False),
                    "prod-like workspaces need it"),
    "MLK-APPI-001": (PROD, insights, lambda s: insights(s, local_authentication_enabled=True),
                     "telemetry must be sent with Entra ID"),
    "MLK-APPI-002": (PROD, insights, lambda s: insights(s, workspace_id=None), "classic Application Insights"),
    "MLK-APPI-003": (PROD, insights, lambda s: insights(s, internet_query_enabled=True),
                     "internet_query_enabled is true"),
}
# More failing shapes of MLK-ADF-001, each a fixture of its own (tests/test_policies_orchestration.py).
ADF_001_FAILURES = {
    "lake-key": (lambda s: lake(s, use_managed_identity=None, storage_account_key="abc"), "storage_account_key is set"),
    "databricks-token": (lambda s: databricks_link(s, authentication=None, accessToken={"type": "SecureString",
                                                                                         "value": "dapi0"}),
                         "type_properties_json holds accessToken"),
    "databricks-not-msi": (lambda s: databricks_link(s, authentication="AccessToken"), "it must be MSI"),
}
