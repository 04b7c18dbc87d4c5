"""Application Insights on the environment's Log Analytics workspace (reference 004's "App Insights").

Workspace-based (its data lives in Log Analytics, one retention and access model), Entra ID only
for ingestion (local authentication off: the connection string alone cannot send telemetry; the
sender's identity needs Monitoring Metrics Publisher). Its connection string is stored in the
environment's Key Vault, where the scoring Deployment reads it from; nothing prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from cdktn import ITerraformDependable
from cdktn_provider_azurerm.application_insights import ApplicationInsights
from cdktn_provider_azurerm.key_vault_secret import KeyVaultSecret
from constructs import Construct

from policies.suppressions import suppress

from .key_vault import SecretsVault
from .roles import MONITORING_METRICS_PUBLISHER, assign_role


@dataclass(frozen=True)
class TelemetryProps:
    name: str
    resource_group_name: str
    location: str
    log_analytics_workspace_id: str
    retention_days: int = 90
    # Private environments: no queries from the internet (the portal goes through Azure Monitor
    # private link); ingestion stays on its public endpoint, authenticated with Entra ID.
    private: bool = True
    tags: dict[str, str] = field(default_factory=dict)


class ApplicationTelemetry(Construct):
    def __init__(self, scope: Construct, id_: str, props: TelemetryProps):
        super().__init__(scope, id_)
        self.props = props
        self.insights = ApplicationInsights(
            self, "insights", name=props.name, resource_group_name=props.resource_group_name,
            location=props.location, application_type="web", workspace_id=props.log_analytics_workspace_id,
            retention_in_days=props.retention_days, local_authentication_enabled=False,
            internet_ingestion_enabled=True, internet_query_enabled=not props.private,
            ip_masking_enabled=True, tags=props.tags)

    @property
    def id(self) -> str:
        return self.insights.id

    def store_connection_string(self, vault: SecretsVault, secret_name: str,
                                after: Sequence[ITerraformDependable] = ()) -> KeyVaultSecret:
        """The connection string as a Key Vault secret (``after``: the access policy that lets Terraform write)."""
        secret = KeyVaultSecret(
            self, "connection-string", name=secret_name, key_vault_id=vault.id,
            value=self.insights.connection_string, content_type="application-insights-connection-string",
            tags=self.props.tags,
            depends_on=list(after) or None)
        suppress(secret, "CKV_AZURE_41",
                 "The value is the Application Insights resource's own connection string, managed and rewritten by "
                 "Terraform with the resource; an expiry date would only break telemetry when it passes.")
        return secret

    def grant_publish(self, id_: str, principal_id: str) -> None:
        """Send telemetry with Entra ID (local authentication is off)."""
        assign_role(self, id_, role=MONITORING_METRICS_PUBLISHER, resource_id=self.insights.id,
                    principal_id=principal_id)
