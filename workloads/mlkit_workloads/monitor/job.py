"""monitor: drift of what the service saw vs what its model version was trained on.

For every model version that served requests in the window: PSI of each feature (served rows vs
the version's training rows) and, for the forecast, per group PSI of the served predictions vs the
same model's backtest predictions for that group (``assess_version`` says why that reference); for
the classifier, PSI of its served probabilities vs its probabilities on its training rows
(``classifier.py``). Results are appended to the monitoring table;
the report (Markdown + PNG) goes to MLflow and, locally, under ``<state>/reports/monitoring/``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import WorkloadError
from ..forecast.meta_model import FORECASTER
from ..forecast.models import STATS
from ..runtime import Runtime, experiment
from .classifier import assess_classifier, code_labels, codes, reference_scores
from .data import Reference, logged_events, served_rows, training_reference, version_models
from .psi import psi
from .report import feature_plot, group_psi_plot, markdown
from .settings import MonitoringSettings

RESULTS = "monitoring_results"


def _numbers(rows: pd.DataFrame, column: str) -> np.ndarray:
    return pd.to_numeric(rows[column], errors="coerce").to_numpy(float) if column in rows else np.array([])


def classifier_model(name: str, version: str):
    import mlflow.sklearn

    return mlflow.sklearn.load_model(f"models:/{name}/{version}")


def monitoring_settings(ws) -> MonitoringSettings:
    return ws.monitoring


def _row(kind, subject, value, threshold, n_ref, n_cur, min_rows, ref, cur) -> dict:
    enough = n_cur >= min_rows and n_ref > 0
    drift = bool(enough and value > threshold)
    verdict = "drift" if drift else ("ok" if enough else ("no_reference" if n_ref == 0 else "too_few_rows"))
    return {"kind": kind, "subject": subject, "psi": value if enough else float("nan"), "threshold": threshold,
            "drift": drift, "verdict": verdict, "n_ref": int(n_ref), "n_cur": int(n_cur),
            "ref_mean": float(np.nanmean(ref)) if n_ref else float("nan"),
            "cur_mean": float(np.nanmean(cur)) if n_cur else float("nan")}


def uses_features(info: dict) -> bool:
    """Whether a group's model reads the features: a calendar booster (older bundles) and mlforecast's
    XGBoost do; the statsforecast models forecast from the history alone (their requests may omit them)."""
    return info.get("kind") != FORECASTER or info.get("model_type") not in STATS


def prediction_bins(n_ref: int, bins: int) -> int:
    """Bins for a group's predictions: at most ``bins``, and at least ~5 reference values per bin (a
    backtest is windows x horizon values: 21 to 84 here)."""
    return max(2, min(bins, n_ref // 5))


def assess_version(served: pd.DataFrame, reference: Reference, models, keys: list[str], ts: str,
                   features: list[str], ms: MonitoringSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PSI per feature (served rows of groups whose model uses features vs the training rows) and per
    group PSI of the served predictions vs the group's backtest predictions.

    Why the backtest as the prediction reference: the served values are forecasts 1 to horizon periods
    after the history; the backtest holds the same model's forecasts 1 to horizon periods after each of
    its last cutoffs, so both are draws of the same kind of quantity, near the same end of the series.
    The training targets are not: they carry the noise a forecast smooths out (a narrower served
    distribution would read as drift) and the whole history's level (a trending series would always
    look drifted); predicting on past training rows is not possible with a forecaster at all."""
    known = set(map(tuple, models.groups()))
    with_features = served[[uses_features(models.group_info(k)) if k in known else True
                            for k in zip(*(served[c].astype(str) for c in keys))]] if len(served) else served
    feats = []
    for f in features:
        ref = pd.to_numeric(reference.rows[f], errors="coerce").to_numpy(float)
        cur = pd.to_numeric(with_features[f], errors="coerce").to_numpy(float) if f in with_features else np.array([])
        feats.append(_row("feature", f, psi(ref, cur, ms.bins), ms.feature_psi_threshold, len(ref), len(cur),
                          ms.min_rows, ref, cur))
    groups = []
    for key, rows in served.groupby(keys, sort=False):
        key = tuple(str(v) for v in (key if isinstance(key, tuple) else (key,)))
        cur = pd.to_numeric(rows["prediction"], errors="coerce").to_numpy(float)
        ref = reference.backtest.get(key, np.array([]))
        # Equal-width bins over the backtest's range: a group's forecasts sit in tight clusters (one
        # value per date and feature setting), and quantile edges inside a cluster split it by noise
        # (measured: PSI 2.7 on traffic whose forecasts match the backtest's, 0.0x with widths).
        value = psi(ref, cur, prediction_bins(len(ref), ms.bins), width=True)
        groups.append(_row("prediction", "/".join(key), value,
                           ms.prediction_psi_threshold, len(ref), len(cur), ms.min_rows_per_group, ref, cur))
    return pd.DataFrame(feats), pd.DataFrame(groups)


def model_jobs(ws) -> dict[str, str]:
    """Full registered name -> the job that registers it (every job's, served or not any more)."""
    from ..model_names import full_model_name
    from ..registry_contract import JOBS

    return {full_model_name(ws.tracking.registry, getattr(ws, job).registered_model): job for job in JOBS}


def run(rt: Runtime) -> dict:
    import mlflow

    ms = monitoring_settings(rt.settings)
    cols = rt.settings.forecast.columns
    keys, ts, features = list(cols.group_keys), cols.timestamp, list(cols.features)
    run_at = pd.Timestamp.now(tz="UTC")
    since = run_at - pd.Timedelta(days=ms.window_days)
    events, source = logged_events(rt, ms, since)
    served = served_rows(events, since)
    if served.empty:
        # Not an error, and not "ok" either: a service with no traffic has no drift to report, and the
        # task table says "nothing to compare" rather than a pass. Nothing is written.
        note = (f"no inferences logged in the last {ms.window_days} day(s) in {source} "
                "(locally: `mlkit serve --env local` and send requests); nothing to monitor")
        rt.say(note)
        out = {"outcome": "nothing to compare", "served_rows": 0, "model_versions": [], "drifted_features": [],
               "drifted_groups": [], "note": note, "inference_source": source}
        for k, v in out.items():
            rt.context.set(k, v)
        return out
    jobs = model_jobs(rt.settings)
    unknown = sorted(set(served.model_name) - set(jobs))
    if unknown:
        raise WorkloadError(f"{source}: inferences of {', '.join(unknown)}, which no job of this environment "
                            f"registers ({', '.join(sorted(jobs))}): the service logs into another environment's log?")
    rt.say(f"monitoring {len(served)} served rows of {served.groupby(['model_name', 'model_version']).ngroups} "
           f"model version(s) of {served.model_name.nunique()} model(s)")

    work = Path(tempfile.mkdtemp(prefix="mlkit-monitor-"))
    report_dir = work / "report"
    report_dir.mkdir()
    results, versions, images = [], [], []
    for (name, version), rows in served.groupby(["model_name", "model_version"], sort=True):
        job = jobs[name]
        stem = f"{job}_v{version}"
        if job == "forecast":
            reference = training_reference(rt.tables, name, version, keys)
            models = version_models(name, version, work / f"model-{stem}")
            fdf, gdf = assess_version(rows, reference, models, keys, ts, features, ms)
            label = f"{reference.label}; predictions: backtest of {reference.backtest_label}"
        else:
            cfg = rt.settings.classifier
            reference = training_reference(rt.tables, name, version, [], backtest=False)
            model = classifier_model(name, version)
            fdf, gdf = assess_classifier(rows, reference.rows, reference_scores(model, reference.rows, cfg), cfg, ms,
                                         _row)
            label = f"{reference.label}; scores: the version's probabilities on those rows"
        for f, r in zip(fdf.subject, fdf.itertuples(index=False)):
            png = f"{stem}_feature_{f}.png"
            labels = None
            if job != "forecast" and f in rt.settings.classifier.columns.categorical:  # codes, labelled by category
                ref_values, cur_values = codes(reference.rows[f], rows[f] if f in rows else pd.Series([], dtype=object))
                labels = code_labels(reference.rows[f])
            else:
                ref_values, cur_values = _numbers(reference.rows, f), _numbers(rows, f)
            feature_plot(report_dir / png, f, ref_values, cur_values, r.psi, r.drift, labels)
            images.append(png)
        png = f"{stem}_{'prediction_psi_by_group' if job == 'forecast' else 'score_psi'}.png"
        group_psi_plot(report_dir / png, gdf, ms.prediction_psi_threshold, *(
            () if job == "forecast" else ("PSI of served probabilities vs the version's on its training rows",)))
        images.append(png)
        versions.append({"job": job, "model_name": name, "model_version": version, "reference": label,
                         "rows": len(rows), "n_groups": gdf.shape[0] if job == "forecast" else None,
                         "features": fdf, "groups": gdf})
        results.append(pd.concat([fdf, gdf]).assign(model_name=name, model_version=version))

    table = pd.concat(results, ignore_index=True).assign(run_at=run_at, env=rt.env, window_days=ms.window_days)
    table_version = rt.tables.append(RESULTS, table)
    drifted_features = sorted(set(table[(table.kind == "feature") & table.drift].subject))
    drifted_groups = sorted(set(table[(table.kind == "prediction") & table.drift].subject))
    drifted_scores = sorted(set(table[(table.kind == "score") & table.drift].model_name))
    meta = {"environment": rt.env, "run at": f"{run_at:%Y-%m-%d %H:%M} UTC",
            "window": f"last {ms.window_days} day(s), since {since:%Y-%m-%d %H:%M} UTC",
            "inferences from": source,
            "thresholds": f"feature PSI > {ms.feature_psi_threshold:g}, prediction PSI > {ms.prediction_psi_threshold:g}",
            "verdict": ("DRIFT: " + ", ".join([*(f"feature {f}" for f in drifted_features),
                                              *(f"group {g}" for g in drifted_groups),
                                              *(f"score of {m}" for m in drifted_scores)])
                        if drifted_features or drifted_groups or drifted_scores else "no drift above the thresholds")}
    md = markdown("Monitoring report", meta, versions, images)
    (report_dir / "report.md").write_text(md)

    experiment(rt, "monitor")
    with mlflow.start_run(run_name=f"monitor {rt.env}") as mrun:
        mlflow.log_metrics({"served_rows": len(served), "drifted_features": len(drifted_features),
                            "drifted_groups": len(drifted_groups), "drifted_scores": len(drifted_scores)})
        mlflow.log_artifacts(str(report_dir), "monitoring_report")
    local_root = Path(rt.tables.root)
    report_path = f"mlflow run {mrun.info.run_id}: monitoring_report/report.md"
    if local_root.is_dir():  # local runner: keep a browsable copy beside the tables
        dest = local_root.parent / "reports" / "monitoring" / f"{run_at:%Y%m%dT%H%M%SZ}-{mrun.info.run_id[:8]}"
        shutil.copytree(report_dir, dest)
        report_path = str(dest / "report.md")
    shutil.rmtree(work, ignore_errors=True)

    out = {"served_rows": len(served), "model_versions": sorted(served.model_version.unique().tolist()),
           "models": sorted(served.model_name.unique().tolist()),
           "drifted_features": drifted_features, "drifted_groups": drifted_groups, "drifted_scores": drifted_scores,
           "inference_source": source,
           "monitoring_table": rt.tables.path(RESULTS), "monitoring_table_version": table_version,
           "report": report_path, "mlflow_run_id": mrun.info.run_id}
    for k, v in out.items():
        rt.context.set(k, v)
    if ms.fail_on_drift and (drifted_features or drifted_groups or drifted_scores):
        raise WorkloadError(f"drift above the thresholds: {meta['verdict']} (report: {report_path})")
    return out
