"""databricks: instance pools, the cluster policy, jobs and the secret scope (checkov has no such checks).

Limits come from the environment file (databricks.cluster_policy), so a stack that drifts
from its own configuration is caught, and so is a hand-edited construct.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from ..model import Context, Element
from ..values import blocks, get, is_ref, json_document, show
from .pack import Pack

PACK = Pack("databricks")
rule = PACK.rule

POOL = ("databricks_instance_pool",)
POLICY = ("databricks_cluster_policy",)
JOB = ("databricks_job",)
SCOPE = ("databricks_secret_scope",)

# Databricks Runtime long-term-support releases (major.minor).
LTS_RUNTIMES = ("9.1", "10.4", "11.3", "12.2", "13.3", "14.3", "15.4", "16.4", "17.3")
# name-version(-build)?-python-abi-platform.whl (PEP 427), version starting with a digit.
_WHEEL = re.compile(r"(?:^|/)[A-Za-z0-9_.]+-\d[A-Za-z0-9_.+!]*(?:-\d[^-/]*)?-[^-/]+-[^-/]+-[^-/]+\.whl$")


# ----------------------------------------------------------------------------- pools

@rule("MLK-DB-001", "error", "Instance pool terminates idle instances", types=POOL,
      why="Idle pool instances are billed VMs; without a short idle timeout a pool keeps paying for nothing.",
      fix="Set idle_instance_autotermination_minutes at or below databricks.cluster_policy.autotermination_minutes.")
def pool_idle(el: Element, ctx: Context) -> Iterable[str]:
    limit = ctx.cfg.databricks.cluster_policy.autotermination_minutes
    v = el.config.get("idle_instance_autotermination_minutes")
    if v is None:
        yield "idle_instance_autotermination_minutes is not set"
    elif not is_ref(v) and v > limit:
        yield f"idle_instance_autotermination_minutes is {v}; this environment allows at most {limit}"


@rule("MLK-DB-002", "error", "Instance pool has a maximum capacity", types=POOL,
      why="An unbounded pool lets one runaway job allocate VMs until the subscription quota is gone.",
      fix="Set max_capacity.")
def pool_capacity(el: Element, ctx: Context) -> Iterable[str]:
    v = el.config.get("max_capacity")
    if v is None:
        yield "max_capacity is not set: the pool can grow without bound"
    elif not is_ref(v) and v < 1:
        yield f"max_capacity is {v}"


# ----------------------------------------------------------------------------- cluster policy

def _definition(el: Element) -> dict[str, Any] | None:
    return json_document(el.config.get("definition"))


def _bounded(spec: Any, limit: int, minimum: int = 0) -> str | None:
    """None when a policy element pins a number to [minimum, limit]; otherwise what is wrong."""
    if not isinstance(spec, dict):
        return "is not constrained"
    kind = spec.get("type")
    if kind == "fixed":
        v = spec.get("value")
        if is_ref(v):
            return None
        return None if isinstance(v, (int, float)) and minimum <= v <= limit else f"is fixed to {show(v)}"
    if kind == "range":
        hi = spec.get("maxValue")
        if hi is None:
            return "is a range without maxValue"
        return None if hi <= limit and spec.get("minValue", minimum) >= minimum else f"allows up to {hi}"
    return f"has type {show(kind)}; use fixed or range"


@rule("MLK-DB-003", "error", "Cluster policy forces auto-termination", types=POLICY,
      why="A cluster that never terminates runs (and bills) until someone notices.",
      fix='Add "autotermination_minutes": {"type": "fixed", "value": N} with N <= the configured minutes.')
def policy_autotermination(el: Element, ctx: Context) -> Iterable[str]:
    doc = _definition(el)
    if doc is None:
        yield "definition is not a JSON policy document"
        return
    limit = ctx.cfg.databricks.cluster_policy.autotermination_minutes
    problem = _bounded(doc.get("autotermination_minutes"), limit, minimum=1)
    if problem:
        yield f"autotermination_minutes {problem} (must be forced to 1-{limit} minutes)"


@rule("MLK-DB-004", "error", "Cluster policy allows only listed node types", types=POLICY,
      why="Free choice of VM size is the most common way ML clusters blow the budget or the quota.",
      fix='Add "node_type_id": {"type": "allowlist", "values": [...]} from databricks.cluster_policy.allowed_node_types.')
def policy_node_types(el: Element, ctx: Context) -> Iterable[str]:
    doc = _definition(el)
    if doc is None:
        return  # reported by MLK-DB-003
    allowed = set(ctx.cfg.databricks.cluster_policy.allowed_node_types)
    spec = doc.get("node_type_id")
    if not isinstance(spec, dict) or spec.get("type") not in ("allowlist", "fixed"):
        yield "node_type_id is not restricted to an allowlist"
        return
    values = spec.get("values") if spec.get("type") == "allowlist" else [spec.get("value")]
    extra = sorted(str(v) for v in values or [] if not is_ref(v) and v not in allowed)
    if extra:
        yield f"node_type_id allows {', '.join(extra)}, which the environment does not list"


@rule("MLK-DB-005", "error", "Cluster policy caps the number of workers", types=POLICY,
      why="Without a cap a single job cluster can scale to hundreds of nodes.",
      fix='Constrain "autoscale.max_workers" and "num_workers" with {"type": "range", "maxValue": N}.')
def policy_max_workers(el: Element, ctx: Context) -> Iterable[str]:
    doc = _definition(el)
    if doc is None:
        return
    limit = ctx.cfg.databricks.cluster_policy.max_workers
    for key in ("autoscale.max_workers", "num_workers"):
        problem = _bounded(doc.get(key), limit)
        if problem:
            yield f"{key} {problem} (the environment allows at most {limit} workers)"


@rule("MLK-DB-006", "error", "Cluster policy pins an LTS runtime", types=POLICY,
      why="Floating runtimes change Spark, Python and library versions under a job without a release.",
      fix=f'Add "spark_version": {{"type": "fixed", "value": "<LTS>.x-scala2.12"}} (LTS: {", ".join(LTS_RUNTIMES)}).')
def policy_runtime(el: Element, ctx: Context) -> Iterable[str]:
    doc = _definition(el)
    if doc is None:
        return
    spec = doc.get("spark_version")
    if not isinstance(spec, dict) or spec.get("type") not in ("fixed", "allowlist"):
        yield "spark_version is not pinned (use type fixed)"
        return
    values = [spec.get("value")] if spec.get("type") == "fixed" else list(spec.get("values") or [])
    for v in values:
        if is_ref(v):
            continue
        m = re.match(r"(\d+\.\d+)\.", str(v))
        if not m or m.group(1) not in LTS_RUNTIMES or "latest" in str(v):
            yield f"spark_version {show(v)} is not a long-term-support runtime"


# ----------------------------------------------------------------------------- jobs

def _cluster_problems(where: str, cluster: dict[str, Any]) -> Iterable[str]:
    if not cluster.get("instance_pool_id"):
        yield f"{where} does not draw from an instance pool (instance_pool_id)"
    if not cluster.get("policy_id"):
        yield f"{where} is not under a cluster policy (policy_id)"


@rule("MLK-DB-007", "error", "Jobs run on pooled job clusters under the policy", types=JOB,
      why="All-purpose clusters cost about twice as much per DBU and escape the policy's limits.",
      fix="Give every task a job_cluster_key whose new_cluster sets instance_pool_id and policy_id; "
          "never existing_cluster_id.")
def job_compute(el: Element, ctx: Context) -> Iterable[str]:
    cfg = el.config
    if cfg.get("existing_cluster_id"):
        yield "the job runs on an all-purpose cluster (existing_cluster_id)"
    clusters = {}
    for jc in blocks(cfg, "job_cluster"):
        key = jc.get("job_cluster_key")
        clusters[key] = jc
        yield from _cluster_problems(f"job cluster {show(key)}", get(jc, "new_cluster") or {})
    tasks = blocks(cfg, "task")
    if not tasks and not cfg.get("existing_cluster_id"):
        yield "the job has no tasks"
    for t in tasks:
        key = t.get("task_key")
        if t.get("existing_cluster_id"):
            yield f"task {show(key)} runs on an all-purpose cluster (existing_cluster_id)"
        elif t.get("new_cluster"):
            yield from _cluster_problems(f"task {show(key)}'s new_cluster", get(t, "new_cluster") or {})
        elif t.get("job_cluster_key") is None:
            yield f"task {show(key)} names no job cluster"
        elif not is_ref(t["job_cluster_key"]) and t["job_cluster_key"] not in clusters:
            yield f"task {show(key)} uses job cluster {show(t['job_cluster_key'])}, which the job does not define"


@rule("MLK-DB-008", "warning", "Jobs notify someone on failure", types=JOB,
      why="A scheduled retraining that fails silently leaves stale models in production.",
      fix="Set email_notifications.on_failure (databricks.notification_emails) or webhook_notifications.on_failure.")
def job_notifications(el: Element, ctx: Context) -> Iterable[str]:
    if not (get(el.config, "email_notifications.on_failure") or get(el.config, "webhook_notifications.on_failure")):
        yield "no one is notified when the job fails (email_notifications.on_failure is empty)"


@rule("MLK-DB-009", "error", "Jobs have a timeout and a concurrency limit", types=JOB,
      why="A hung run holds a cluster forever; overlapping runs of a training job race on the same tables.",
      fix="Set timeout_seconds > 0 and max_concurrent_runs (jobs.timeout_seconds, jobs.max_concurrent_runs).")
def job_limits(el: Element, ctx: Context) -> Iterable[str]:
    t = el.config.get("timeout_seconds")
    if t is None or (not is_ref(t) and t <= 0):
        yield f"timeout_seconds is {show(t)}: a hung run is never stopped"
    if el.config.get("max_concurrent_runs") is None:
        yield "max_concurrent_runs is not set"


@rule("MLK-DB-010", "error", "Jobs install a pinned wheel version", types=JOB,
      why="An unpinned library means two runs of the same job can execute different code.",
      fix="Reference the wheel by its versioned file name (name-1.2.3-py3-none-any.whl); pin PyPI packages with ==.")
def job_wheel(el: Element, ctx: Context) -> Iterable[str]:
    libs = list(blocks(el.config, "library"))
    for t in blocks(el.config, "task"):
        libs.extend(blocks(t, "library"))
        if t.get("python_wheel_task") and not any(lib.get("whl") for lib in blocks(t, "library")):
            yield f"task {show(t.get('task_key'))} runs a python_wheel_task without a wheel library"
    for lib in libs:
        whl = lib.get("whl")
        if whl is not None and not is_ref(whl) and not _WHEEL.search(str(whl)):
            yield f"wheel {show(whl)} has no version in its file name"
        pkg = get(lib, "pypi.package")
        if pkg is not None and not is_ref(pkg) and "==" not in str(pkg):
            yield f"PyPI package {show(pkg)} is not pinned with =="


# ----------------------------------------------------------------------------- secret scope

@rule("MLK-DB-011", "error", "Secret scope is backed by Key Vault", types=SCOPE,
      why="Databricks-backed scopes hold secrets outside Key Vault's access policies, audit and rotation.",
      fix='Set backend_type = "AZURE_KEYVAULT" with keyvault_metadata { resource_id, dns_name }.')
def scope_backend(el: Element, ctx: Context) -> Iterable[str]:
    backend = el.config.get("backend_type")
    if backend != "AZURE_KEYVAULT" and not is_ref(backend):
        yield f"backend_type is {show(backend)}; it must be AZURE_KEYVAULT"
    elif not el.config.get("keyvault_metadata"):
        yield "keyvault_metadata is not set"
