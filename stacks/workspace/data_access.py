"""The jobs' access to the data lake through Unity Catalog, with a managed identity only.

The workspace is assigned to the region's metastore; a storage credential points at the
platform's access connector (a system-assigned identity: no client secret, no account key);
one external location per container the jobs use; and ``databricks_grants`` giving the jobs'
run-as service principal exactly READ FILES (read) or READ FILES + WRITE FILES (write) on each.
The jobs read and write Delta by path (abfss://), so no catalog/schema/table privilege is needed.

Secure defaults: credential and locations are ISOLATION_MODE_ISOLATED (bound to this workspace:
the metastore is shared by every environment of the region, so dev cannot use prod's
credential); read locations are read_only; nobody is granted anything on the credential itself;
``databricks_grants`` is authoritative, so a grant added by hand is removed on the next apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from cdktn import ITerraformDependable, Token
from cdktn_provider_databricks.external_location import ExternalLocation
from cdktn_provider_databricks.grants import Grants, GrantsGrant
from cdktn_provider_databricks.metastore_assignment import MetastoreAssignment
from cdktn_provider_databricks.storage_credential import StorageCredential, StorageCredentialAzureManagedIdentity
from constructs import Construct

from ..data_access import Access
from ..errors import StackInputError

ISOLATED = "ISOLATION_MODE_ISOLATED"
PRIVILEGES: dict[str, list[str]] = {"read": ["READ_FILES"], "write": ["READ_FILES", "WRITE_FILES"]}


@dataclass(frozen=True)
class DataAccessProps:
    access_connector_id: str      # Azure resource id of the access connector (cross-stack reference)
    credential_name: str
    # container -> (external location name, abfss:// URL, access the jobs need)
    locations: Mapping[str, tuple[str, str, Access]]
    principal_application_id: str  # the jobs' run-as service principal
    workspace_id: str | None = None  # numeric workspace id; with metastore_id, assigns the metastore
    metastore_id: str | None = None
    comment: str = "Managed by mlkit"


class UnityCatalogDataAccess(Construct):
    def __init__(self, scope: Construct, id_: str, props: DataAccessProps):
        super().__init__(scope, id_)
        bad = {c: a for c, (_, _, a) in props.locations.items() if a not in PRIVILEGES}
        if bad:
            raise StackInputError("data access", f"access must be read or write: {bad}")
        if props.metastore_id and not props.workspace_id:
            raise StackInputError("databricks.metastore_id", "assigning a metastore needs the workspace id")
        self.props = props
        self.assignment: MetastoreAssignment | None = None
        after: list[ITerraformDependable] = []
        if props.metastore_id:
            self.assignment = MetastoreAssignment(
                self, "metastore", metastore_id=props.metastore_id,
                workspace_id=Token.as_number(props.workspace_id))
            after.append(self.assignment)
        self.credential = StorageCredential(
            self, "credential", name=props.credential_name, comment=props.comment,
            azure_managed_identity=StorageCredentialAzureManagedIdentity(
                access_connector_id=props.access_connector_id),
            isolation_mode=ISOLATED, depends_on=after or None)
        self.locations: dict[str, ExternalLocation] = {}
        self.grants: dict[str, Grants] = {}
        for container, (name, url, access) in props.locations.items():
            # Creating a location validates that the credential can reach the URL (no skip_validation):
            # a missing role assignment fails the apply instead of the first job run.
            loc = self.locations[container] = ExternalLocation(
                self, f"location-{container}", name=name, url=url, credential_name=self.credential.name,
                comment=f"{props.comment}: jobs {access} {container}", isolation_mode=ISOLATED,
                read_only=access == "read", depends_on=after or None)
            self.grants[container] = Grants(
                self, f"grants-{container}", external_location=loc.name,
                grant=[GrantsGrant(principal=props.principal_application_id, privileges=PRIVILEGES[access])])
