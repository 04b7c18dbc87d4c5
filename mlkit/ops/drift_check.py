"""``mlkit drift``: per stack a refresh-only plan and a normal plan, plus cloud inventories."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..config import EnvironmentConfig
from .deploy import check_backend, env_stacks
from .drift import Allowlist, DriftReport, analyze, unmanaged_items
from .inventory import CloudObject, managed_ids, unmanaged
from .terraform import Terraform

# An inventory takes the Terraform-managed plans of the environment and lists cloud objects.
Inventory = Callable[[list[dict]], list[CloudObject]]


@dataclass
class DriftInputs:
    refresh: dict
    plan: dict


def plan_stack(tf: Terraform, stack, workdir: Path) -> DriftInputs:
    workdir.mkdir(parents=True, exist_ok=True)
    tf.init(stack)
    refresh_file, plan_file = (workdir / "refresh.tfplan").resolve(), (workdir / "plan.tfplan").resolve()
    tf.plan(stack, refresh_file, "-refresh-only")
    refresh = tf.show_json(stack, refresh_file)
    tf.plan(stack, plan_file)
    plan = tf.show_json(stack, plan_file)
    (workdir / "refresh.json").write_text(json.dumps(refresh))
    (workdir / "plan.json").write_text(json.dumps(plan))
    return DriftInputs(refresh, plan)


def check(cfg: EnvironmentConfig, cdktf_out: Path, tf: Terraform, out: Path, allow: Allowlist,
          inventories: dict[str, Inventory], progress: Callable[[str], None] = lambda _: None) -> DriftReport:
    report = DriftReport(cfg.name)
    plans = []
    for stack in env_stacks(cfg, cdktf_out):
        check_backend(cfg, stack)
        progress(f"{stack.name}: refresh-only plan + plan")
        inputs = plan_stack(tf, stack, out / stack.name)
        plans.append(inputs.refresh)
        report.items += analyze(stack.name, inputs.refresh, inputs.plan, allow)
    managed = set().union(*(managed_ids(p) for p in plans)) if plans else set()
    for name, inventory in inventories.items():
        progress(f"inventory: {name}")
        report.items += unmanaged_items(unmanaged(inventory(plans), managed), allow, name)
    if not inventories:
        report.notes.append("unmanaged objects were not inventoried (no inventory configured for this run)")
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(report.as_dict(), indent=2, default=str) + "\n")
    (out / "drift.md").write_text(report.markdown())
    return report


def workspace_from_state(plans: list[dict]) -> tuple[str, str] | None:
    """(https host, ARM resource id) of the azurerm_databricks_workspace in state, if any."""
    for p in plans:
        stack = [((p.get("prior_state") or {}).get("values") or {}).get("root_module") or {}]
        while stack:
            mod = stack.pop()
            stack.extend(mod.get("child_modules") or ())
            for r in mod.get("resources") or ():
                if r.get("type") == "azurerm_databricks_workspace":
                    v = r.get("values") or {}
                    if v.get("workspace_url"):
                        return f"https://{v['workspace_url']}", v.get("id", "")
    return None
