"""Azure Data Factory: copies the source database into the raw container (reference 000/002).

Identities: the factory's system-assigned identity moves the data (Azure SQL read, raw write);
a user-assigned one calls Databricks (a system-assigned identity exports no client id, and the
workspace registers a service principal by client id). Every linked service authenticates with
one of them: no keys, passwords or tokens anywhere. Where the environment is private the
factory's public endpoint is off and its integration runtime runs in a managed virtual network
that reaches storage, the SQL server and Databricks through managed private endpoints.

The pipeline itself and the Databricks linked service live in the workspace stack: they name the
Databricks job and instance pool, which exist only after this stack (stacks/workspace/orchestration.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn import TerraformOutput
from cdktn_provider_azurerm.data_factory import DataFactory, DataFactoryIdentity
from cdktn_provider_azurerm.data_factory_credential_user_managed_identity import (
    DataFactoryCredentialUserManagedIdentity,
)
from cdktn_provider_azurerm.data_factory_dataset_azure_sql_table import DataFactoryDatasetAzureSqlTable
from cdktn_provider_azurerm.data_factory_dataset_parquet import (
    DataFactoryDatasetParquet,
    DataFactoryDatasetParquetAzureBlobFsLocation,
)
from cdktn_provider_azurerm.data_factory_integration_runtime_azure import DataFactoryIntegrationRuntimeAzure
from cdktn_provider_azurerm.data_factory_linked_service_azure_sql_database import (
    DataFactoryLinkedServiceAzureSqlDatabase,
)
from cdktn_provider_azurerm.data_factory_linked_service_data_lake_storage_gen2 import (
    DataFactoryLinkedServiceDataLakeStorageGen2,
)
from cdktn_provider_azurerm.data_factory_managed_private_endpoint import DataFactoryManagedPrivateEndpoint
from cdktn_provider_azurerm.user_assigned_identity import UserAssignedIdentity
from constructs import Construct

from policies.suppressions import suppress

from envconfig.orchestration import SqlSource

from envconfig.naming import Names
from .data_factory_pipeline import LOAD_DATE_PARAMETER, PARTITION, CopySpec
from .storage import DataLakeStorage

RAW_CONTAINER = "raw"
# Data Factory's private-link sub-resources of the targets it reaches from its managed network.
SQL_SUBRESOURCE, STORAGE_SUBRESOURCE, DATABRICKS_SUBRESOURCE = "sqlServer", "dfs", "databricks_ui_api"
OUTPUT_SQL_GRANTS = "data_factory_sql_grants"


@dataclass(frozen=True)
class DataFactoryProps:
    names: Names
    resource_group_name: str
    location: str
    source: SqlSource
    storage: DataLakeStorage
    # Databricks workspace resource id: the managed private endpoint's target where private.
    databricks_workspace_id: str
    # Private environment: public endpoint off, managed virtual network + managed private endpoints.
    private: bool = True
    tags: dict[str, str] = field(default_factory=dict)


class OrchestrationFactory(Construct):
    def __init__(self, scope: Construct, id_: str, props: DataFactoryProps):
        super().__init__(scope, id_)
        self.props = props
        n = props.names
        self.databricks_identity = UserAssignedIdentity(
            self, "databricks-identity", name=n.data_factory_databricks_identity,
            resource_group_name=props.resource_group_name, location=props.location, tags=props.tags)
        self.factory = DataFactory(
            self, "factory",
            name=n.data_factory, resource_group_name=props.resource_group_name, location=props.location,
            identity=DataFactoryIdentity(type="SystemAssigned, UserAssigned",
                                         identity_ids=[self.databricks_identity.id]),
            public_network_enabled=not props.private,
            managed_virtual_network_enabled=props.private,
            tags=props.tags,
        )
        suppress(self.factory, "CKV_AZURE_103",
                 "The pipelines are generated from the job graph and deployed by Terraform from this repository; a "
                 "factory Git integration would be a second, hand-editable source of the same pipelines.")
        suppress(self.factory, "CKV2_AZURE_15",
                 "Microsoft-managed keys, as for the data lake (MLK-ST-004 adds infrastructure encryption there): the "
                 "factory stores definitions, not data, and a customer-managed key needs a rotation owner the "
                 "platform does not have yet.")
        self.credential = DataFactoryCredentialUserManagedIdentity(
            self, "databricks-credential", name=n.adf_credential, data_factory_id=self.factory.id,
            identity_id=self.databricks_identity.id,
            description="The identity the factory runs Databricks jobs as (a workspace service principal)")
        # Behind a managed network every linked service runs on its integration runtime; else Azure's default.
        self.integration_runtime = DataFactoryIntegrationRuntimeAzure(
            self, "integration-runtime", name=n.adf_integration_runtime, data_factory_id=self.factory.id,
            location="AutoResolve", virtual_network_enabled=True,
            description="Azure integration runtime in the factory's managed virtual network") if props.private else None
        runtime = n.adf_integration_runtime if props.private else None
        after = [self.integration_runtime] if self.integration_runtime else None  # referenced by name only
        self.private_endpoints: dict[str, DataFactoryManagedPrivateEndpoint] = {}
        if props.private:
            for target, resource_id, subresource in (
                    ("sql", props.source.server_id, SQL_SUBRESOURCE),
                    ("st-dfs", props.storage.id, STORAGE_SUBRESOURCE),
                    ("dbw", props.databricks_workspace_id, DATABRICKS_SUBRESOURCE)):
                self.private_endpoints[target] = DataFactoryManagedPrivateEndpoint(
                    self, f"mpe-{target}", name=n.adf_managed_private_endpoint(target), data_factory_id=self.factory.id,
                    target_resource_id=resource_id, subresource_name=subresource)
        src = props.source
        self.sql = DataFactoryLinkedServiceAzureSqlDatabase(
            self, "sql", name=n.adf_linked_service_sql, data_factory_id=self.factory.id,
            # No user, no password: the factory's identity is a contained user of the database.
            connection_string=(f"Integrated Security=False;Encrypt=True;Connection Timeout=30;"
                               f"Data Source={src.host};Initial Catalog={src.database}"),
            use_managed_identity=True, integration_runtime_name=runtime, depends_on=after,
            description="The source database (Azure SQL), read as the factory's managed identity")
        self.raw = DataFactoryLinkedServiceDataLakeStorageGen2(
            self, "raw", name=n.adf_linked_service_raw, data_factory_id=self.factory.id,
            url=props.storage.account.primary_dfs_endpoint, use_managed_identity=True,
            integration_runtime_name=runtime, depends_on=after,
            description="The data lake's raw container, written as the factory's managed identity")
        self.copies: list[CopySpec] = []
        for table in src.tables:
            copy = CopySpec(table.name, table.folder, n.adf_dataset_sql(table.name), n.adf_dataset_raw(table.name))
            schema, name = table.name.split(".", 1)
            DataFactoryDatasetAzureSqlTable(
                self, f"dataset-sql-{copy.activity}", name=copy.sql_dataset, data_factory_id=self.factory.id,
                linked_service_id=self.sql.id, schema=schema, table=name)
            DataFactoryDatasetParquet(
                self, f"dataset-raw-{copy.activity}", name=copy.raw_dataset, data_factory_id=self.factory.id,
                linked_service_name=self.raw.name, parameters={LOAD_DATE_PARAMETER: ""}, compression_codec="snappy",
                azure_blob_fs_location=DataFactoryDatasetParquetAzureBlobFsLocation(
                    file_system=RAW_CONTAINER, dynamic_path_enabled=True, filename=copy.file_name,
                    path=f"@concat('{copy.folder}/{PARTITION}', dataset().{LOAD_DATE_PARAMETER})"))
            self.copies.append(copy)
        # Blob write on raw, nothing else in the lake.
        self.raw_write = props.storage.grant_blob_write("data-factory-raw-write", self.principal_id, RAW_CONTAINER)
        # Read on the source is a database permission, not an Azure role: the database's Entra ID admin
        # runs these statements once (Terraform has no Azure SQL data-plane provider here).
        TerraformOutput(self, OUTPUT_SQL_GRANTS, static_id=True,
                        description=f"T-SQL for {src.database}'s Entra ID admin: the factory reads the source tables",
                        value="; ".join([f"CREATE USER [{n.data_factory}] FROM EXTERNAL PROVIDER",
                                         *(f"GRANT SELECT ON {t.name} TO [{n.data_factory}]" for t in src.tables)]))

    @property
    def id(self) -> str:
        return self.factory.id

    @property
    def principal_id(self) -> str:
        return self.factory.identity.principal_id
