"""``mlkit drift``: per stack a refresh-only plan and a normal plan, plus cloud inventories."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Callable, Iterator

from envconfig.environment import EnvironmentConfig
from envconfig.errors import UserError
from envconfig.synth_output import Stack

from .deploy import check_backend, env_stacks
from .drift import Allowlist, DriftReport, analyze, unmanaged_items
from .inventory import CloudObject, managed_ids, unmanaged
from .terraform import Terraform

# An inventory takes the Terraform-managed plans of the environment and lists cloud objects.
Inventory = Callable[[list[dict]], list[CloudObject]]


def plan_stack(tf: Terraform, stack: Stack, workdir: Path) -> tuple[dict, dict]:
    """(refresh-only plan, plan) documents. Plan files hold every value in clear (sensitive ones
    included), so they live in ``workdir``, a private temporary directory, never in the report."""
    tf.init(stack)
    docs = []
    for name, extra in (("refresh", ("-refresh-only",)), ("plan", ())):
        plan_file = (workdir / f"{stack.name}.{name}.tfplan").resolve()
        tf.plan(stack, plan_file, *extra)
        res = tf.run(stack, "show", "-json", str(plan_file))
        try:
            docs.append(json.loads(res.stdout))
        except ValueError as e:
            what = "refresh-only plan" if extra else "plan"
            raise UserError(f"{stack.name}: `terraform show -json` of the {what} is not JSON ({e}); "
                            "a truncated or partial document is never judged", exit_code=1) from None
    return docs[0], docs[1]


def check(cfg: EnvironmentConfig, cdktf_out: Path, tf: Terraform, out: Path, allow: Allowlist,
          inventories: dict[str, Inventory], progress: Callable[[str], None] = lambda _: None) -> DriftReport:
    for old in ("drift.json", "drift.md"):  # a failed run must not leave the last verdict behind
        (out / old).unlink(missing_ok=True)
    report = DriftReport(cfg.name, notes=list(allow.notes))
    plans = []
    with tempfile.TemporaryDirectory(prefix="mlkit-drift-") as private:
        for stack in env_stacks(cfg, cdktf_out):
            check_backend(cfg, stack)
            progress(f"{stack.name}: refresh-only plan + plan")
            refresh, plan = plan_stack(tf, stack, Path(private))
            report.items += analyze(stack.name, refresh, plan, allow)
            plans.append(refresh)
    managed = set().union(*(managed_ids(p) for p in plans)) if plans else set()
    for name, inventory in inventories.items():
        progress(f"inventory: {name}")
        report.items += unmanaged_items(unmanaged(inventory(plans), managed), allow)
    if not inventories:
        report.notes.append("unmanaged objects were not inventoried (no inventory configured for this run)")
    write(report, out)
    return report


def write(report: DriftReport, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    (out / "drift.md").write_text(report.markdown())


def allowlist_variables(cfg: EnvironmentConfig) -> dict[str, str | None]:
    """What ``${...}`` in the allowlist's ``to`` values may name."""
    p = cfg.principals
    return {"deployer_application_id": p.deployer_application_id if p else None,
            "deployer_object_id": p.deployer if p else None}


# ------------------------------------------------------------------ what the state says


def _state_resources(plans: list[dict]) -> Iterator[dict]:
    for p in plans:
        stack = [((p.get("prior_state") or {}).get("values") or {}).get("root_module") or {}]
        while stack:
            mod = stack.pop()
            stack.extend(mod.get("child_modules") or ())
            yield from mod.get("resources") or ()


def workspace_from_state(plans: list[dict]) -> tuple[str, str] | None:
    """(https host, ARM resource id) of the azurerm_databricks_workspace in state, if any."""
    for r in _state_resources(plans):
        if r.get("type") == "azurerm_databricks_workspace":
            v = r.get("values") or {}
            if v.get("workspace_url"):
                return f"https://{v['workspace_url']}", v.get("id", "")
    return None


def uc_schemas_from_state(plans: list[dict]) -> list[tuple[str, str]]:
    """(catalog, schema) of every Unity Catalog schema Terraform manages or puts models in:
    where to look for registered models Terraform does not manage."""
    out = set()
    for r in _state_resources(plans):
        v = r.get("values") or {}
        if r.get("type") == "databricks_schema" and v.get("catalog_name") and v.get("name"):
            out.add((v["catalog_name"], v["name"]))
        elif r.get("type") == "databricks_registered_model" and v.get("catalog_name") and v.get("schema_name"):
            out.add((v["catalog_name"], v["schema_name"]))
    return sorted(out)


def cloud_inventories(cfg: EnvironmentConfig, databricks_host: str | None,
                      uc_schemas: list[tuple[str, str]], credential=None) -> dict[str, Inventory]:
    """What to look for outside Terraform's state: the resource group's Azure resources and the
    workspace's Databricks objects (host from state unless given), signed in with the deployer's
    credential (service principal / OIDC / managed identity)."""
    from . import inventory as inv

    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)

    def azure(plans):
        return inv.azure_resources(inv.azure_client(credential, cfg.subscription_id), cfg.names.resource_group)

    def databricks(plans):
        host = databricks_host or (workspace_from_state(plans) or ("",))[0]
        if not host:
            raise UserError("no Databricks workspace in Terraform state; pass --databricks-host", exit_code=1)
        # The environment's own model schema always, even when state lost track of it (that is when
        # unmanaged models matter most), plus every schema the state knows.
        registry = cfg.workloads.tracking.registry
        schemas = uc_schemas or sorted({(registry.catalog, registry.schema_), *uc_schemas_from_state(plans)})
        # An environment that exports to its BI database has a service credential to account for.
        return inv.databricks_objects(inv.databricks_client(host, credential), schemas,
                                      credentials=cfg.postgres.enabled)

    return {"azure": azure, "databricks": databricks}
