"""`<env>-serving`: the scoring service deployed to the platform's AKS (Kubernetes provider).

The Kubernetes provider is configured from the platform stack without any credential in state or
outputs: the cluster's name and resource group are cross-stack references, an azurerm data source
reads its API server address and CA certificate (public values), and the token comes from
``kubelogin`` at plan/apply time with the deployer's own Entra ID login (the cluster has local
accounts disabled, so there is no admin kubeconfig to leak).

One Deployment serves every model of ``workloads.serving.models`` (the forecast bundle and the
classifier), not one per model: the classifier is one small pipeline (a few MB) and the forecast's
memory is bounded by its LRU, so both fit one pod; a Deployment per model would pay the interpreter
and libraries (~300 MiB measured) and an autoscaler, a disruption budget and an endpoint per model
for no isolation the models need, and one workload identity would still load both. That identity
has EXECUTE on exactly the served models (workspace stack, ``cfg.served_models``).

The Deployment runs ``<acr>/mlkit-scoring@<digest>``, never a tag, so a rebuild under the same tag
cannot change what runs. The digest is the Terraform variable ``scoring_image_digest``: ``mlkit
deploy`` builds the image with ACR Tasks just before this stack and passes the digest it recorded;
in a prod-like environment its default is the digest the release lock pins, and any other value
fails the plan (stacks/release_gate.py). ``cdktn deploy <env>-serving --var scoring_image_digest=sha256:...``
works the same way.
"""

from __future__ import annotations

from cdktn import Fn, TerraformOutput, TerraformStack, TerraformVariable, TerraformVariableValidationConfig
from cdktn_provider_azurerm.data_azurerm_kubernetes_cluster import DataAzurermKubernetesCluster
from cdktn_provider_azurerm.provider import AzurermProvider, AzurermProviderFeatures
from cdktn_provider_kubernetes.provider import KubernetesProvider, KubernetesProviderExec
from constructs import Construct

from envconfig.environment import EnvironmentConfig
from envconfig.naming import Names, tags_for

from .backend import attach_backend
from .errors import StackInputError
from .platform_stack import PlatformStack
from .release_gate import ReleaseExpectation, ReleaseGate
from .serving.scoring import ScoringService, ScoringServiceProps
from .settings_resolution import resolve_workload_settings

# The Entra ID application of the AKS API server (the same in every tenant); kubelogin asks for it.
AKS_AAD_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
OUTPUT_SCORING_URL = "scoring_service_url"
OUTPUT_SCORING_IMAGE = Names.scoring_image_output


DIGEST_VARIABLE = "scoring_image_digest"


def scoring_image(login_server: str, names: Names, digest: str) -> str:
    return f"{login_server}/{names.scoring_image_repository}@{digest}"


class ServingStack(TerraformStack):
    def __init__(self, scope: Construct, cfg: EnvironmentConfig, platform: PlatformStack,
                 release: ReleaseExpectation | None = None, wheel_source: str = ""):
        names: Names = cfg.names
        super().__init__(scope, names.serving_stack)
        self.cfg = cfg
        ss = cfg.workloads.serving
        if ss.auth.mode == "none":
            raise StackInputError("workloads.serving.auth.mode",
                                  f"'none' (an open API) is only allowed in local environments, not in {cfg.name!r}")
        attach_backend(self, cfg, "serving")
        # Only for the data source below: same OIDC login as the platform stack, no secrets.
        AzurermProvider(self, "azurerm", subscription_id=cfg.subscription_id, tenant_id=cfg.tenant_id,
                        use_oidc=True, use_cli=False, features=[AzurermProviderFeatures()])
        self.cluster = DataAzurermKubernetesCluster(
            self, "aks", name=platform.aks.cluster.name, resource_group_name=platform.resource_group.name)
        endpoint = self.cluster.kube_config.get(0)
        KubernetesProvider(
            self, "kubernetes",
            host=endpoint.host,
            cluster_ca_certificate=Fn.base64decode(endpoint.cluster_ca_certificate),
            # azurecli: the deployer's `az login` (in CI: azure/login with OIDC). kubelogin must be on PATH
            # (`az aks install-cli`). Nothing about this token is written to state.
            exec=[KubernetesProviderExec(
                api_version="client.authentication.k8s.io/v1beta1", command="kubelogin",
                args=["get-token", "--login", "azurecli", "--server-id", AKS_AAD_SERVER_APP_ID])],
        )

        self.image_digest = TerraformVariable(
            self, DIGEST_VARIABLE, type="string", nullable=False,
            default=release.image_digest if release and release.image_digest else None,
            description="sha256:... of the scoring image (mlkit deploy passes the one its ACR build recorded; "
                        "prod-like: the release lock's)",
            validation=[TerraformVariableValidationConfig(
                condition=f"${{can(regex(\"^sha256:[0-9a-f]{{64}}$\", var.{DIGEST_VARIABLE}))}}",
                error_message="scoring_image_digest must be an image digest like sha256:<64 hex digits>")])
        if release is not None:
            ReleaseGate(self, "release-gate", release, wheel_source=wheel_source,
                        image_variable=DIGEST_VARIABLE)
        k8s = ss.kubernetes
        image = scoring_image(platform.registry.login_server, names, self.image_digest.string_value)
        self.scoring = ScoringService(self, "scoring", ScoringServiceProps(
            env=cfg.name, namespace=names.scoring_namespace, service_account=names.scoring_service_account,
            app=names.scoring_app, image=image, workload_client_id=platform.scoring_identity.client_id,
            settings=resolve_workload_settings(cfg.workloads, names),
            env_vars={
                "MLKIT_KEY_VAULT_URI": platform.key_vault.uri,
                "MLKIT_EVENTHUB_NAMESPACE": f"{names.eventhub_namespace}.servicebus.windows.net",
                "MLKIT_EVENTHUB_NAME": names.eventhub_inference_logs,
                "MLKIT_MODEL_CACHE": "/tmp/mlkit-models",
                # Runs in the workspace's MLflow, models in Unity Catalog (catalog.schema.model names);
                # DATABRICKS_HOST names the workspace both go through.
                "MLFLOW_TRACKING_URI": "databricks",
                "MLFLOW_REGISTRY_URI": "databricks-uc",
                "DATABRICKS_HOST": platform.workspace.url,
                # Application Insights' connection string: a Key Vault secret the container reads at start.
                **({"MLKIT_APPINSIGHTS_SECRET_NAME": names.application_insights_secret}
                   if ss.telemetry.traces == "azure_monitor" else {}),
            },
            served_models=tuple(cfg.served_models.values()),
            cpu_request=k8s.cpu_request, cpu_limit=k8s.cpu_limit, memory_request=k8s.memory_request,
            memory_limit=k8s.memory_limit, min_replicas=k8s.min_replicas, max_replicas=k8s.max_replicas,
            target_cpu_percent=k8s.target_cpu_percent,
            labels={"mlkit/environment": cfg.name, **{k: v for k, v in tags_for(cfg.tags, cfg.name).items()
                                                      if k in ("cost-center",)}}))

        TerraformOutput(self, OUTPUT_SCORING_URL, static_id=True,
                        value=f"http://{names.scoring_app}.{names.scoring_namespace}.svc.cluster.local",
                        description="in-cluster URL of the scoring service (bearer API key required)")
        TerraformOutput(self, OUTPUT_SCORING_IMAGE, value=image, static_id=True,
                        description="image the deployment runs, by digest; `mlkit deploy` builds and pushes it first")
