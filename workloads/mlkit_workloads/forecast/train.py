"""Train one group: pure pandas in, one result row out. Runs inside applyInPandas.

prepare the series (trim, grid, the history kept, gap policy) -> the XGBoost candidate's
hyperparameter search (``tuning.tune``, on the periods before the first backtest origin) ->
rolling-origin backtest of every candidate (``models.backtest``) -> the candidate with the lowest
backtest MAE wins -> refit it on the whole series.

Every outcome is a status, never an exception: ``ok``, ``skipped`` (nothing worth training) or
``failed`` (something broke). One group's failure must not fail the Spark task.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from .frequency import Plan
from .metrics import backtest_metrics, seasonal_scale
from .models import BASELINE, BoostRun, backtest, candidates, fit
from .series import SeriesProblem, prepare
from .tuning import Tuned, tune

TUNED = "xgboost"  # the candidate whose hyperparameters are searched per group

BASE_METRICS = ("mae", "rmse", "wape", "mase")


def metric_names(levels: list[int]) -> tuple[str, ...]:
    """The per-group metric columns: the winner's, its interval coverage, then the baseline's."""
    return (*BASE_METRICS, *(f"coverage_{lv}" for lv in levels), *(f"baseline_{m}" for m in BASE_METRICS))


# The XGBoost candidate's search, per group (0 / "" / NaN when it did not run or failed; the
# failure's reason is in ``candidates``).
SEARCH_FIELDS = (("search_trials", "long"), ("search_params", "string"), ("search_best_iteration", "long"),
                 ("search_val_mae", "double"), ("search_seconds", "double"))


@dataclass
class GroupResult:
    status: str  # ok | skipped | failed
    reason: str = ""
    n_rows: int = 0
    n_periods: int = 0  # after trimming, on the grid
    n_filled: int = 0  # periods filled by the gap policy
    first_ts: str = ""
    last_ts: str = ""
    model_type: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    candidates: dict = field(default_factory=dict)  # model -> backtest metrics, or {"error": ...}
    backtest: list = field(default_factory=list)  # the winner's backtest: [ds, cutoff, y, mean, lo, hi]
    fit_seconds: float = 0.0
    search: Tuned | None = None  # the XGBoost candidate's search
    model: object | None = None  # the fitted Forecaster

    def row(self, names: tuple[str, ...]) -> dict:
        out = asdict(self)
        out.update({m: float(self.metrics.get(m, np.nan)) for m in names})
        out["candidates"] = json.dumps(self.candidates)
        out["backtest"] = json.dumps(self.backtest)
        out["model"] = self.model
        del out["metrics"], out["search"]
        found = self.search.as_row() if self.search else {}
        out.update({n: found.get(n, {"long": 0, "string": "", "double": float("nan")}[t]) for n, t in SEARCH_FIELDS})
        return out


def train_group(pdf: pd.DataFrame, cfg, plan: Plan, seed: int = 0) -> GroupResult:
    """``cfg``: settings.Forecast; ``plan``: the run's frequency and sizes."""
    try:
        return _train(pdf, cfg, plan, seed)
    except SeriesProblem as p:
        return GroupResult(p.status, p.reason, n_rows=len(pdf))
    except Exception as e:  # noqa: BLE001 - the group fails, the job goes on
        return GroupResult("failed", _why(e), n_rows=len(pdf))


def _why(e: Exception) -> str:
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {tb[-1].name}:{tb[-1].lineno})" if tb else ""
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{where}"[:500]


def _train(pdf: pd.DataFrame, cfg, plan: Plan, seed: int) -> GroupResult:
    col = cfg.columns
    started = time.perf_counter()
    s = prepare(pdf, col.timestamp, col.target, list(col.features), plan.freq, cfg.gaps.fill,
                cfg.gaps.max_missing_share, plan.max_periods)
    frame = s.frame
    base = GroupResult("skipped", n_rows=len(pdf), n_periods=len(frame), n_filled=s.filled,
                       first_ts=frame.ds.iloc[0].isoformat(), last_ts=frame.ds.iloc[-1].isoformat())
    if len(frame) < plan.min_periods:
        base.reason = (f"too few periods ({len(frame)} < {plan.min_periods}: {plan.windows} backtest windows of "
                       f"{plan.horizon} + {plan.min_train_periods} to train on)")
        return base
    if frame.y.nunique() <= 1:
        base.reason = "constant target (nothing to learn)"
        return base

    levels, trees = list(cfg.levels), cfg.search.max_rounds
    scale = seasonal_scale(frame.y.to_numpy()[: len(frame) - plan.windows * plan.horizon], plan.season_length)
    scores: dict[str, dict] = {}
    cvs: dict[str, pd.DataFrame] = {}
    tuned: Tuned | None = None
    boost: BoostRun | None = None  # the tuned candidate's backtest and refit share their fits
    for kind in candidates(list(cfg.models)):
        size, params = trees, None
        if kind == TUNED:
            try:
                tuned = tune(frame, list(col.features), plan, cfg.search, seed)
            except Exception as e:  # noqa: BLE001 - a failed search drops this candidate only
                scores[kind] = {"error": f"search: {_why(e)}"}
                continue
            size, params = tuned.best_iteration, tuned.params
        try:
            if kind == TUNED:
                boost = BoostRun(frame, list(col.features), plan, levels, size, seed, params)
                cv = boost.backtest()
            else:
                cv = backtest(kind, frame, list(col.features), plan, levels, size, seed, params)
            if cv["mean"].isna().any() or len(cv) != plan.windows * plan.horizon:
                raise ValueError(f"{int(cv['mean'].isna().sum())} empty forecasts in {len(cv)} backtest periods")
            cvs[kind], scores[kind] = cv, backtest_metrics(cv, levels, scale)
        except Exception as e:  # noqa: BLE001 - this candidate is out, the others go on
            scores[kind] = {"error": _why(e)}
    if not cvs:
        base.status, base.reason = "failed", "every candidate failed: " + "; ".join(
            f"{k}: {v['error']}" for k, v in scores.items())[:480]
        base.candidates, base.search = scores, tuned
        return base
    winner = min(cvs, key=lambda k: (scores[k]["mae"], k != BASELINE))  # a tie goes to the baseline
    # The tuned candidate wins only through its BoostRun, which holds its searched params and fits.
    model = boost.fit() if winner == TUNED else fit(winner, frame, list(col.features), plan, levels, trees, seed)
    metrics = dict(scores[winner])
    if BASELINE in scores and "error" not in scores[BASELINE]:
        metrics.update({f"baseline_{m}": scores[BASELINE][m] for m in BASE_METRICS})
    top = max(levels)
    cv = cvs[winner]
    bt = [[d.isoformat(), c.isoformat(), float(y), float(m), float(lo), float(hi)] for d, c, y, m, lo, hi in
          zip(cv.ds, cv.cutoff, cv.y, cv["mean"], cv[f"lo_{top}"], cv[f"hi_{top}"])]
    return GroupResult("ok", "", n_rows=len(pdf), n_periods=len(frame), n_filled=s.filled,
                       first_ts=base.first_ts, last_ts=base.last_ts, model_type=winner, metrics=metrics,
                       candidates=scores, backtest=bt, fit_seconds=time.perf_counter() - started, search=tuned,
                       model=model)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
