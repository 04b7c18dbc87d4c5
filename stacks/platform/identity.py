"""A user-assigned identity that one Kubernetes service account can act as (AKS workload identity)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_azurerm.federated_identity_credential import FederatedIdentityCredential
from cdktn_provider_azurerm.user_assigned_identity import UserAssignedIdentity
from constructs import Construct

# The audience Entra ID expects for Kubernetes-issued tokens exchanged by workload identity.
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


@dataclass(frozen=True)
class WorkloadIdentityProps:
    name: str
    federated_credential_name: str
    resource_group_name: str
    location: str
    oidc_issuer_url: str
    # system:serviceaccount:<namespace>:<name>: exactly one service account, never a wildcard.
    subject: str
    tags: dict[str, str] = field(default_factory=dict)


class WorkloadIdentity(Construct):
    def __init__(self, scope: Construct, id_: str, props: WorkloadIdentityProps):
        super().__init__(scope, id_)
        if not props.subject.startswith("system:serviceaccount:") or "*" in props.subject:
            raise ValueError(f"workload identity subject {props.subject!r} must name one service account")
        self.props = props
        self.identity = UserAssignedIdentity(
            self, "identity",
            name=props.name,
            resource_group_name=props.resource_group_name,
            location=props.location,
            tags=props.tags,
        )
        self.federated_credential = FederatedIdentityCredential(
            self, "federated-credential",
            name=props.federated_credential_name,
            user_assigned_identity_id=self.identity.id,
            issuer=props.oidc_issuer_url,
            subject=props.subject,
            audience=[TOKEN_EXCHANGE_AUDIENCE],
        )

    @property
    def principal_id(self) -> str:
        return self.identity.principal_id

    @property
    def client_id(self) -> str:
        """Goes into the service account's azure.workload.identity/client-id annotation."""
        return self.identity.client_id
