"""The scoring service's access to the workspace model registry: its user-assigned identity
registered as a Databricks service principal, the registered models created by Terraform, and
CAN_READ on the models it serves, for that principal only.

Secure defaults: the principal gets no entitlement of its own (no cluster, pool or SQL
creation) and nothing above CAN_READ. ``databricks_permissions`` is authoritative for a
model's ACL; the provider keeps CAN_MANAGE for the principal running Terraform, which is also
the jobs' owner and run-as identity (``run_as`` names the deployer's application id), so
training can still register versions and promotion can still move aliases. Workspace admins
keep their access.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_databricks.mlflow_model import MlflowModel, MlflowModelTags
from cdktn_provider_databricks.permissions import Permissions, PermissionsAccessControl
from cdktn_provider_databricks.service_principal import ServicePrincipal
from constructs import Construct

from ..errors import StackInputError

READ = "CAN_READ"


@dataclass(frozen=True)
class ModelAccessProps:
    application_id: str           # client id of the scoring identity (a cross-stack reference)
    display_name: str
    models: tuple[str, ...]       # registered models to create and manage
    readable: tuple[str, ...]     # of those, the ones the scoring principal may read
    description: str = "Registered by mlkit"
    tags: dict[str, str] = field(default_factory=dict)


class ModelRegistryAccess(Construct):
    def __init__(self, scope: Construct, id_: str, props: ModelAccessProps):
        super().__init__(scope, id_)
        if len(set(props.models)) != len(props.models):
            raise StackInputError("workloads.*.registered_model",
                                  f"two workloads register the same model name: {', '.join(props.models)}")
        missing = [m for m in props.readable if m not in props.models]
        if missing:
            raise StackInputError("workloads.serving.registered_model",
                                  f"the scoring service serves {', '.join(missing)}, which no workload registers "
                                  f"(registered: {', '.join(props.models)})")
        self.props = props
        self.principal = ServicePrincipal(
            self, "principal", application_id=props.application_id, display_name=props.display_name,
            allow_cluster_create=False, allow_instance_pool_create=False, databricks_sql_access=False)
        self.models = {
            name: MlflowModel(self, f"model-{name}", name=name, description=props.description,
                              tags=[MlflowModelTags(key=k, value=v) for k, v in props.tags.items()] or None)
            for name in props.models
        }
        self.grants = {
            name: Permissions(
                self, f"read-{name}", registered_model_id=self.models[name].registered_model_id,
                access_control=[PermissionsAccessControl(service_principal_name=self.principal.application_id,
                                                         permission_level=READ)])
            for name in props.readable
        }
