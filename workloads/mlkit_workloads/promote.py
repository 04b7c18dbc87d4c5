"""promote: apply the gates to the version just trained; move `champion` only if they pass.

The previous champion stays reachable as `previous_champion`. Pass or fail, the decision goes
to the decisions table and onto the training run; a failure then stops the job with GateFailed.
"""

from __future__ import annotations

import json

import pandas as pd

from .errors import GateFailed, WorkloadError
from .gates import Decision, classifier_gates, forecast_gates
from .runtime import TABLES, Runtime
from .registry_contract import PROMOTION, PROMOTION_REASONS, gate_decision, move_champion
from .tracking import champion_version, check_reachable

UPSTREAM = {"forecast": "train_many", "classifier": "train_classifier"}


def decide(rt: Runtime, model: str, run_id: str) -> Decision:
    from mlflow import MlflowClient

    if model == "forecast":
        metrics = rt.tables.read_pandas(TABLES["group_metrics"])
        metrics = metrics[metrics.run_id == run_id]
        return forecast_gates(metrics, rt.settings.forecast.gates, list(rt.settings.forecast.columns.group_keys))
    return classifier_gates(MlflowClient().get_run(run_id).data.metrics, rt.settings.classifier.gates)


def apply(name: str, version: str, decision: Decision) -> str | None:
    """Move the aliases on a pass. Returns the champion it replaced (None if there was none)."""
    from mlflow import MlflowClient

    client = MlflowClient()
    client.set_model_version_tag(name, version, PROMOTION, gate_decision(decision.passed))
    if decision.passed:
        return move_champion(client, name, version)
    return champion_version(name)


def run(rt: Runtime, model: str) -> dict:
    from mlflow import MlflowClient

    if model not in UPSTREAM:
        raise WorkloadError(f"unknown model {model!r}: use forecast or classifier")
    check_reachable()
    upstream = UPSTREAM[model]
    run_id, version = rt.context.get(upstream, "run_id"), str(rt.context.get(upstream, "model_version"))
    name = rt.context.get(upstream, "model_name")
    decision = decide(rt, model, run_id)
    previous = apply(name, version, decision)
    decided_at = pd.Timestamp.now(tz="UTC")
    # Keyed on the training run: a retried promote replaces its decision instead of adding a second one.
    rt.tables.replace_where(TABLES["decisions"], pd.DataFrame([{
        "decided_at": decided_at, "job": model, "model_name": name, "model_version": version, "run_id": run_id,
        "passed": decision.passed, "reasons": "\n".join(decision.reasons), "numbers": json.dumps(decision.numbers),
        "previous_champion": previous or "", "env": rt.env}]), {"run_id": run_id})
    client = MlflowClient()
    client.set_tag(run_id, PROMOTION, gate_decision(decision.passed))
    client.set_tag(run_id, PROMOTION_REASONS, "\n".join(decision.reasons)[:5000])
    client.log_dict(run_id, {"passed": decision.passed, "reasons": decision.reasons, "numbers": decision.numbers,
                             "version": version, "previous_champion": previous}, "promotion_decision.json")
    out = {"model_name": name, "model_version": version, "passed": decision.passed, "reasons": decision.reasons,
           "champion": version if decision.passed else (previous or ""), "previous_champion": previous or "",
           "decisions_table": rt.tables.path(TABLES["decisions"])}
    for k, v in out.items():
        rt.context.set(k, v)
    if not decision.passed:
        raise GateFailed(name, version, decision.failures)
    return out
