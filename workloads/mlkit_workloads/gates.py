"""Promotion gates: pure functions from metrics to a decision with its reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .settings import ClassifierGates, ForecastGates


@dataclass
class Decision:
    passed: bool
    reasons: list[str]  # one line per gate, pass or fail, with the numbers
    numbers: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        return [r for r in self.reasons if r.startswith("FAIL")]


def _line(ok: bool, text: str) -> str:
    return f"{'pass' if ok else 'FAIL'}: {text}"


def forecast_gates(groups: pd.DataFrame, gates: ForecastGates, group_keys: list[str]) -> Decision:
    """``groups``: one row per group with status, model_type, wape and baseline_wape (the group metrics
    table); the metrics are the rolling-origin backtest's."""
    if groups.empty:
        return Decision(False, [_line(False, "no groups were trained")], {})
    ok = groups[groups.status == "ok"]
    share = len(ok) / len(groups)
    median = float(ok.wape.median()) if ok.wape.notna().any() else float("nan")
    # Relative to the naive seasonal baseline: wape <= baseline * (1 + z). Groups where either
    # is undefined (all actuals 0) cannot be judged and are not counted against the model.
    judged = ok.dropna(subset=["wape", "baseline_wape"])
    worse = judged[judged.wape > judged.baseline_wape * (1 + gates.max_worse_than_baseline)]
    reasons = [
        _line(share >= gates.min_share_ok, f"share of groups ok {share:.2f} (min {gates.min_share_ok:.2f}; "
                                           f"{len(ok)} of {len(groups)})"),
        _line(bool(median <= gates.max_median_wape), f"median WAPE {median:.3f} (max {gates.max_median_wape:.3f})"),
    ]
    if worse.empty:
        reasons.append(_line(True, f"no group worse than its naive seasonal baseline by more than "
                                   f"{gates.max_worse_than_baseline:.0%} ({len(judged)} groups judged)"))
    else:
        shown = ", ".join(
            f"{'/'.join(str(r[k]) for k in group_keys)} ({r.wape:.3f} vs {r.baseline_wape:.3f})"
            for _, r in worse.head(5).iterrows())
        more = f" and {len(worse) - 5} more" if len(worse) > 5 else ""
        reasons.append(_line(False, f"{len(worse)} group(s) worse than baseline WAPE by more than "
                                    f"{gates.max_worse_than_baseline:.0%}: {shown}{more}"))
    if "model_type" in ok.columns and len(ok):
        beating = float((ok.model_type != "seasonal_naive").mean())
        reasons.append(_line(beating >= gates.min_share_beating_baseline,
                             f"share of trained groups beating the seasonal naive in the backtest {beating:.2f} "
                             f"(min {gates.min_share_beating_baseline:.2f})"))
    numbers = {"share_ok": share, "median_wape": median, "groups_worse_than_baseline": float(len(worse)),
               "groups": float(len(groups))}
    return Decision(all(r.startswith("pass") for r in reasons), reasons, numbers)


def classifier_gates(metrics: dict[str, float], gates: ClassifierGates) -> Decision:
    checks = [("roc_auc", gates.min_roc_auc), ("kappa", gates.min_kappa), ("f1", gates.min_f1)]
    reasons, numbers = [], {}
    for name, minimum in checks:
        value = metrics.get(f"test_{name}", float("nan"))
        numbers[name] = value
        ok = bool(np.isfinite(value) and value >= minimum)
        reasons.append(_line(ok, f"test {name} {value:.3f} (min {minimum:.3f})"))
    return Decision(all(r.startswith("pass") for r in reasons), reasons, numbers)
