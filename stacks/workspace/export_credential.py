"""The export job's way to its database token: a Unity Catalog service credential.

The credential points at the export's own access connector (platform stack); the jobs' run-as
principal gets ACCESS on it and nothing else, and the job asks it for an Entra ID token for Azure
Database for PostgreSQL (``dbutils.credentials.getServiceCredentialsProvider``): no password or
client secret anywhere. Privilege names are the Databricks SDK's ``catalog.Privilege``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdktn_provider_databricks.credential import Credential, CredentialAzureManagedIdentity
from cdktn_provider_databricks.grants import Grants, GrantsGrant
from constructs import Construct

from .data_access import ISOLATED

ACCESS = ("ACCESS",)


@dataclass(frozen=True)
class ExportCredentialProps:
    name: str
    access_connector_id: str  # cross-stack reference to the platform's export connector
    principal_application_id: str  # the jobs' run-as service principal
    comment: str = ""


class ExportCredential(Construct):
    def __init__(self, scope: Construct, id_: str, props: ExportCredentialProps):
        super().__init__(scope, id_)
        self.credential = Credential(
            self, "credential", name=props.name, purpose="SERVICE", comment=props.comment,
            azure_managed_identity=CredentialAzureManagedIdentity(access_connector_id=props.access_connector_id),
            isolation_mode=ISOLATED)
        self.grants = Grants(self, "grants", credential=self.credential.name,
                             grant=[GrantsGrant(principal=props.principal_application_id, privileges=list(ACCESS))])
