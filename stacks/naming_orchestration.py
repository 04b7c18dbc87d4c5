"""Names of the Data Factory, Azure ML and Application Insights resources (CAF: adf, mlw, appi).

Kept beside stacks/naming.py while that module moves into the core package (issue 12's layering);
they join it there. Every rule is the provider's own validation (terraform-provider-azurerm,
internal/services/datafactory/validate and machinelearning/validate), checked at load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .naming import Names, NamingError, Rule

# azurerm validate.DataFactoryName / machinelearning validate.WorkspaceName / the child names of a
# factory (validate.LinkedServiceDatasetName, DataFactoryPipelineAndTriggerName) / Key Vault secrets.
ORCHESTRATION_RULES = {
    "data_factory": Rule("data factory", r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", 3, 63,
                         "letters, digits and single hyphens, starting and ending with a letter or digit"),
    "ml_workspace": Rule("Azure ML workspace", r"[a-zA-Z0-9][\w-]{2,32}", 3, 33,
                         "3-33 letters, digits, '_' and '-', starting with a letter or digit"),
    "ml_storage_account": Rule("storage account", r"[a-z0-9]+", 3, 24, "lowercase letters and digits only"),
    "application_insights": Rule("Application Insights", r"[^%&\\?/]+", 1, 260, "no %&\\?/ characters"),
}
FACTORY_CHILD = re.compile(r"[A-Za-z0-9_][^<>*#.%&:\\+?/]*")
KEY_VAULT_SECRET = re.compile(r"[0-9a-zA-Z-]{1,127}")


@dataclass(frozen=True)
class OrchestrationNames:
    """The optional systems' names for one environment, built on its :class:`Names`."""

    base: Names

    @property
    def data_factory(self) -> str:
        return self.base._dashed("adf")

    @property
    def data_factory_databricks_identity(self) -> str:
        """The user-assigned identity the factory calls Databricks as (its client id is what the
        workspace registers; a system-assigned identity exports no client id to Terraform)."""
        return self.base.managed_identity("adf-databricks")

    data_factory_credential = "cred-databricks"
    integration_runtime = "ir-managed-vnet"
    linked_service_sql = "ls-sql-source"
    linked_service_raw = "ls-adls-raw"
    linked_service_databricks = "ls-databricks"

    @staticmethod
    def dataset_sql(table: str) -> str:
        return "ds_sql_" + table.replace(".", "_")

    @staticmethod
    def dataset_raw(table: str) -> str:
        return "ds_raw_" + table.replace(".", "_")

    @staticmethod
    def pipeline(job: str) -> str:
        return f"pl-{job}"

    @staticmethod
    def trigger(job: str) -> str:
        return f"tr-{job}-schedule"

    @staticmethod
    def managed_private_endpoint(target: str) -> str:
        return f"mpe-{target}"

    @property
    def ml_workspace(self) -> str:
        return self.base._dashed("mlw")

    @property
    def ml_storage_account(self) -> str:
        """Azure ML's own storage: a workspace cannot use the data lake (hierarchical namespace)."""
        return self.base._compact("stml")

    @property
    def application_insights(self) -> str:
        return self.base._dashed("appi")

    # The scoring service reads it into APPLICATIONINSIGHTS_CONNECTION_STRING (serving stack).
    application_insights_secret = "appinsights-connection-string"

    def validate(self) -> None:
        for kind, rule in ORCHESTRATION_RULES.items():
            rule.check(getattr(self, kind))
        for name in (self.data_factory_credential, self.integration_runtime, self.linked_service_sql,
                     self.linked_service_raw, self.linked_service_databricks):
            if not FACTORY_CHILD.fullmatch(name):
                raise NamingError(f"data factory child name {name!r} breaks the Azure rule")
        if not KEY_VAULT_SECRET.fullmatch(self.application_insights_secret):
            raise NamingError(f"Key Vault secret name {self.application_insights_secret!r} breaks the Azure rule")


def orchestration_names(names: Names) -> OrchestrationNames:
    return OrchestrationNames(names)
