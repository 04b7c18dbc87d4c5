"""Azure RBAC role assignments, the way every grant method in the platform constructs makes them."""

from __future__ import annotations

from cdktn_provider_azurerm.role_assignment import RoleAssignment
from constructs import Construct

# Built-in role names (stable across tenants), least privilege for what each grant is for.
ACR_PULL = "AcrPull"
STORAGE_BLOB_DATA_READER = "Storage Blob Data Reader"
# Write (and list/delete) blobs, no account management: what Event Hubs Capture needs on its container.
STORAGE_BLOB_DATA_CONTRIBUTOR = "Storage Blob Data Contributor"
EVENT_HUBS_DATA_SENDER = "Azure Event Hubs Data Sender"
# Azure ML's workspace identity on its own storage account with shared keys off: blobs and file
# shares (notebooks, snapshots) as itself. Publishing telemetry to Application Insights with Entra ID.
STORAGE_FILE_DATA_PRIVILEGED_CONTRIBUTOR = "Storage File Data Privileged Contributor"
MONITORING_METRICS_PUBLISHER = "Monitoring Metrics Publisher"
# Register models and read the workspace (what mlkit promote does), no workspace management.
AZUREML_DATA_SCIENTIST = "AzureML Data Scientist"
# AKS's own identity manages load balancer IPs and NICs in a subnet we bring (VNet-integrated nodes).
NETWORK_CONTRIBUTOR = "Network Contributor"


def assign_role(scope: Construct, id_: str, *, role: str, resource_id: str, principal_id: str) -> RoleAssignment:
    """Give a managed identity one built-in role on one resource.

    principal_type is fixed to ServicePrincipal (managed identities are): together with
    skip_service_principal_aad_check it avoids the Entra ID replication race right after the
    identity is created.
    """
    return RoleAssignment(
        scope, id_,
        scope=resource_id,
        role_definition_name=role,
        principal_id=principal_id,
        principal_type="ServicePrincipal",
        skip_service_principal_aad_check=True,
    )
