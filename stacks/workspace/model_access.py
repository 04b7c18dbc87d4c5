"""The registered models in Unity Catalog, and who may do what with them.

MLflow on Databricks registers into Unity Catalog (``databricks-uc``), so the models are
``databricks_registered_model`` in ``catalog.schema`` (three-level names, built by
``mlkit_workloads.model_names.full_model_name``), not workspace-registry ``databricks_mlflow_model``.

Who gets what (least privilege):

- the jobs' run-as principal (the deployer) *owns* the registered models: owning a model is what
  lets it create versions and move aliases, and no privilege on the model grants more. On the
  containers it gets USE_CATALOG and USE_SCHEMA, nothing else (no CREATE_MODEL: Terraform creates
  the models, a job cannot add new ones);
- the scoring service's principal (its user-assigned identity, registered as a service principal
  without entitlements) gets USE_CATALOG, USE_SCHEMA and EXECUTE (load model versions) on the
  models it serves, and nothing on the others.

``databricks_grants`` is authoritative for its securable, so it is used only on objects this stack
creates (the schema, the models, a catalog it creates). On a catalog that exists and others govern,
``databricks_grant`` adds USE_CATALOG for our two principals and leaves everyone else's grants alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdktn_provider_databricks.catalog import Catalog
from cdktn_provider_databricks.grant import Grant
from cdktn_provider_databricks.grants import Grants, GrantsGrant
from cdktn_provider_databricks.registered_model import RegisteredModel
from cdktn_provider_databricks.schema import Schema
from cdktn_provider_databricks.service_principal import ServicePrincipal
from constructs import Construct

from ..errors import StackInputError

ISOLATED = "ISOLATION_MODE_ISOLATED"
USE_CATALOG, USE_SCHEMA, EXECUTE = "USE_CATALOG", "USE_SCHEMA", "EXECUTE"


@dataclass(frozen=True)
class ModelAccessProps:
    catalog: str
    schema: str
    models: dict[str, str]          # short model name -> full name catalog.schema.model
    served: tuple[str, ...]         # short names of the models the scoring principal may load
    owner_application_id: str       # the jobs' run-as principal: owns the models
    scoring_application_id: str     # client id of the scoring identity (a cross-stack reference)
    scoring_display_name: str
    create_catalog: bool = False
    catalog_storage_root: str | None = None  # managed storage of a catalog this stack creates
    # What must exist before the catalog (the external location covering its storage root).
    catalog_after: tuple = ()
    comment: str = "Managed by mlkit"
    tags: dict[str, str] = field(default_factory=dict)


class UnityCatalogModels(Construct):
    def __init__(self, scope: Construct, id_: str, props: ModelAccessProps):
        super().__init__(scope, id_)
        wrong = [full for short, full in props.models.items() if full != f"{props.catalog}.{props.schema}.{short}"]
        if wrong:
            raise StackInputError("workloads.tracking.registry",
                                  f"models must live in {props.catalog}.{props.schema}: {', '.join(wrong)}")
        missing = [m for m in props.served if m not in props.models]
        if missing:
            raise StackInputError("workloads.serving.models",
                                  f"the scoring service serves {', '.join(missing)}, which no workload registers "
                                  f"(registered: {', '.join(props.models)})")
        if props.create_catalog and not props.catalog_storage_root:
            raise StackInputError("databricks.create_catalog", "a catalog this stack creates needs a storage root")
        self.props = props
        self.principal = ServicePrincipal(
            self, "principal", application_id=props.scoring_application_id, display_name=props.scoring_display_name,
            allow_cluster_create=False, allow_instance_pool_create=False, databricks_sql_access=False)
        both = (props.owner_application_id, self.principal.application_id)

        self.catalog: Catalog | None = None
        if props.create_catalog:
            # Bound to this workspace: the metastore is shared by every environment of the region.
            self.catalog = Catalog(self, "catalog", name=props.catalog, comment=props.comment,
                                   isolation_mode=ISOLATED, storage_root=props.catalog_storage_root,
                                   properties=props.tags or None, depends_on=list(props.catalog_after) or None)
            self.catalog_grants: list[Grants | Grant] = [Grants(
                self, "catalog-grants", catalog=self.catalog.name,
                grant=[GrantsGrant(principal=p, privileges=[USE_CATALOG]) for p in both])]
            catalog_name = self.catalog.name
        else:
            catalog_name = props.catalog
            self.catalog_grants = [
                Grant(self, f"catalog-use-{role}", catalog=catalog_name, principal=p, privileges=[USE_CATALOG])
                for role, p in zip(("owner", "scoring"), both)]

        self.schema = Schema(self, "schema", catalog_name=catalog_name, name=props.schema, comment=props.comment,
                             properties=props.tags or None, depends_on=self.catalog_grants)
        self.schema_grants = Grants(self, "schema-grants", schema=self.schema.id,
                                    grant=[GrantsGrant(principal=p, privileges=[USE_SCHEMA]) for p in both])
        self.models: dict[str, RegisteredModel] = {}
        self.model_grants: dict[str, Grants] = {}
        for short in props.models:
            model = self.models[short] = RegisteredModel(
                self, f"model-{short}", catalog_name=catalog_name, schema_name=self.schema.name, name=short,
                owner=props.owner_application_id, comment=props.comment)
            if short in props.served:
                # Authoritative: the owner needs no grant (it owns), the scoring principal may only load.
                self.model_grants[short] = Grants(
                    self, f"model-grants-{short}", model=model.id,
                    grant=[GrantsGrant(principal=self.principal.application_id, privileges=[EXECUTE])])

    @property
    def dependables(self) -> list:
        """What a job run needs before it can register a version: the models and every grant on the way."""
        return [*self.catalog_grants, self.schema_grants, *self.models.values(), *self.model_grants.values()]
