"""The end-of-run summary: what happened, the numbers, and where to look. Plus the PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from mlkit_workloads.runtime import TABLES
from mlkit_workloads.tables import DeltaRsStore

from .runner import RunReport


def group_metrics(report: RunReport) -> pd.DataFrame | None:
    run_id = report.result("forecast", "train_many").get("run_id")
    if not run_id:
        return None
    df = DeltaRsStore(report.tables_root).read_pandas(TABLES["group_metrics"])
    return df[df.run_id == run_id]


def metrics_png(df: pd.DataFrame, path: Path) -> Path | None:
    """Backtest MASE per group (chosen model vs the seasonal naive) and which model each group got."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[df.status == "ok"].dropna(subset=["mase", "baseline_mase"])
    if ok.empty:
        return None
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.2))
    a.hist(ok.baseline_mase, bins=20, alpha=0.6, label="seasonal naive")
    a.hist(ok.mase, bins=20, alpha=0.6, label="chosen model")
    a.set(title=f"Backtest MASE per group ({len(ok)} ok of {len(df)})", xlabel="MASE (1 = in-sample seasonal naive)",
          ylabel="groups")
    a.legend()
    lim = float(max(ok.mase.max(), ok.baseline_mase.max()) * 1.05)
    for kind, part in ok.groupby("model_type"):
        b.scatter(part.baseline_mase, part.mase, s=16, label=kind)
    b.plot([0, lim], [0, lim], "k--", lw=1, label="= seasonal naive")
    b.set(title="Chosen model vs seasonal naive, one dot per group", xlabel="seasonal naive MASE",
          ylabel="chosen model MASE", xlim=(0, lim), ylim=(0, lim))
    b.legend(fontsize=8)
    counts = ok.model_type.value_counts()
    c.barh(counts.index, counts.values)
    c.set(title="Model chosen by backtest", xlabel="groups")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def sample_groups(gm: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """Best, median and worst trained group by backtest MASE (WAPE where MASE is undefined)."""
    ok = gm[gm.status == "ok"].copy()
    if ok.empty:
        return []
    ok["_score"] = ok.mase.fillna(ok.wape)
    ok = ok.dropna(subset=["_score"]).sort_values("_score", kind="stable").reset_index(drop=True)
    if ok.empty:
        return []
    picks = {"best": 0, "median": (len(ok) - 1) // 2, "worst": len(ok) - 1}
    seen, out = set(), []
    for label, i in picks.items():
        if i not in seen:
            seen.add(i)
            out.append((label, ok.iloc[i]))
    return out


def forecast_png(report: RunReport, gm: pd.DataFrame, path: Path) -> Path | None:
    """For the best, median and worst group: the history, the chosen model's backtest windows (with the
    widest interval) and the future forecast with its intervals."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tm = report.result("forecast", "train_many")
    sc = report.result("forecast", "score")
    picks = sample_groups(gm)
    if not picks or not tm:
        return None
    store = DeltaRsStore(report.tables_root)
    cols = tm.get("columns") or {}
    keys, ts, target = list(cols.get("group_keys", [])), cols.get("timestamp", "date"), cols.get("target", "sales")
    hist = store.read_pandas(TABLES["forecast"])
    preds = None
    if sc and store.version(TABLES["predictions"]) is not None:
        preds = store.read_pandas(TABLES["predictions"])
        preds = preds[preds.model_version == str(sc.get("model_version"))]
    levels = sorted(int(c.split("_")[1]) for c in (preds.columns if preds is not None else []) if c.startswith("lo_"))
    fig, axes = plt.subplots(len(picks), 1, figsize=(12, 3.3 * len(picks)), squeeze=False)
    horizon, windows = int(tm.get("horizon", 1)), int(tm.get("backtest_windows", 1))
    for ax, (label, row) in zip(axes[:, 0], picks):
        sel = np.logical_and.reduce([hist[k].astype(str) == str(row[k]) for k in keys]) if keys else slice(None)
        h = hist[sel].sort_values(ts)
        h = h.tail(max(3 * windows * horizon, 4 * int(tm.get("season_length", 1))))
        ax.plot(pd.to_datetime(h[ts]).dt.tz_localize(None), h[target], color="0.3", lw=1, label="history")
        bt = pd.DataFrame(json.loads(row["backtest"] or "[]"), columns=["ds", "cutoff", "y", "mean", "lo", "hi"])
        for i, (cutoff, w) in enumerate(bt.groupby("cutoff", sort=True)):
            d = pd.to_datetime(w.ds)
            ax.axvspan(d.min(), d.max(), color="tab:orange", alpha=0.07)
            ax.fill_between(d, w.lo, w.hi, color="tab:orange", alpha=0.25, lw=0)
            ax.plot(d, w["mean"], color="tab:orange", lw=1.4, label="backtest forecast" if i == 0 else None)
        if preds is not None and len(preds):
            psel = np.logical_and.reduce([preds[k].astype(str) == str(row[k]) for k in keys]) if keys else slice(None)
            p = preds[psel].sort_values(ts)
            if len(p):
                d = pd.to_datetime(p[ts]).dt.tz_localize(None)
                for lv, alpha in zip(sorted(levels, reverse=True), (0.18, 0.35, 0.5)):
                    ax.fill_between(d, p[f"lo_{lv}"], p[f"hi_{lv}"], color="tab:blue", alpha=alpha, lw=0,
                                    label=f"{lv}% interval")
                ax.plot(d, p.prediction, color="tab:blue", lw=1.6, label="forecast")
        name = "/".join(str(row[k]) for k in keys)
        ax.set_title(f"{label}: {name} — {row['model_type']}, backtest MASE {row['mase']:.2f} "
                     f"(seasonal naive {row['baseline_mase']:.2f}), WAPE {row['wape']:.3f}", fontsize=10)
        ax.legend(fontsize=8, loc="upper left", ncol=3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _dist(s: pd.Series) -> str:
    s = s.dropna()
    if s.empty:
        return "-"
    q = s.quantile([0.1, 0.5, 0.9])
    return f"p10 {q[0.1]:.3f} · median {q[0.5]:.3f} · p90 {q[0.9]:.3f}"


def render(report: RunReport, pngs: list[Path], summary_file: Path) -> Group:
    parts: list = []
    t = Table(title="Tasks", title_justify="left")
    for c in ("job", "task", "status", "seconds"):
        t.add_column(c, justify="right" if c == "seconds" else "left")
    for r in report.tasks:
        color = {"ok": "green", "failed": "red"}.get(r.status, "dim")
        t.add_row(r.job, r.key, f"[{color}]{r.status}[/]", f"{r.seconds:.1f}" if r.status != "not run" else "")
    parts.append(t)

    gm = group_metrics(report)
    if gm is not None:
        tm = report.result("forecast", "train_many")
        counts = gm.status.value_counts()
        lines = [f"groups: {counts.get('ok', 0)} ok · {counts.get('skipped', 0)} skipped · "
                 f"{counts.get('failed', 0)} failed (of {len(gm)}); model {tm.get('model_name')} "
                 f"v{tm.get('model_version')}; training {tm.get('train_seconds')} s, tracking {tm.get('tracking_seconds')} s",
                 f"frequency {tm.get('frequency')} ({tm.get('frequency_source')}); season {tm.get('season_length')}, "
                 f"horizon {tm.get('horizon')}, {tm.get('backtest_windows')} backtest windows"]
        ok = gm[gm.status == "ok"]
        if len(ok):
            chosen = ", ".join(f"{k} {n}" for k, n in ok.model_type.value_counts().items())
            lines.append(f"  chosen by backtest: {chosen}; beating the seasonal naive: "
                         f"{int((ok.model_type != 'seasonal_naive').sum())} of {len(ok)}")
        metrics = ["mase", "baseline_mase", "wape", "baseline_wape", "mae", "rmse",
                   *sorted(c for c in gm.columns if c.startswith("coverage_"))]
        for m in metrics:
            lines.append(f"  {m:<14} {_dist(ok[m])}")
        for (status, reason), n in gm[gm.status != "ok"].groupby(["status", "reason"]).size().items():
            lines.append(f"  {status}: {reason} × {n}")
        parts.append(Text("\nForecast\n", style="bold") + Text("\n".join(lines)))
    for job in ("forecast", "classifier"):
        if job == "classifier":
            tc = report.result("classifier", "train_classifier")
            if tc:
                parts.append(Text("\nClassifier\n", style="bold") + Text(
                    f"{tc['trials']} trials (child runs) · model {tc['model_name']} v{tc['model_version']} · "
                    f"test ROC AUC {tc['test_roc_auc']:.3f} · kappa {tc['test_kappa']:.3f} · F1 {tc['test_f1']:.3f}"))
        pr = report.result(job, "promote")
        if pr:
            verdict = "[green]promoted to champion[/]" if pr.get("passed") else "[red]NOT promoted (champion unchanged)[/]"
            parts.append(Text.from_markup(f"\n[bold]{job} promotion[/]: {pr['model_name']} v{pr['model_version']} "
                                          f"{verdict}" + (f"; previous champion v{pr['previous_champion']}"
                                                          if pr.get("previous_champion") else "")))
            parts.append(Text("\n".join(f"  {r}" for r in pr.get("reasons", []))))
    sc = report.result("forecast", "score")
    if sc:
        missing = sc["groups_without_model"]
        parts.append(Text.from_markup(
            f"\n[bold]Forecast[/]: {sc['rows_scored']} rows in {sc['groups_scored']} groups with "
            f"{sc['model_name']} v{sc['model_version']}, the next {sc.get('horizon')} {sc.get('frequency')} periods "
            f"({sc.get('forecast_from')} to {sc.get('forecast_to')}); groups without a model: {len(missing)}"
            + (f" ({', '.join(missing[:8])}{' …' if len(missing) > 8 else ''})" if missing else "")))
        lines = [f"  not forecast: {g}: {why}" for g, why in list(sc.get("groups_not_forecast", {}).items())[:10]]
        stale = sc.get("groups_with_newer_data") or []
        if stale:
            lines.append(f"  {len(stale)} group(s) have data newer than their model (retrain): {', '.join(stale[:8])}")
        if lines:
            parts.append(Text("\n".join(lines)))
    errors = [r for r in report.tasks if r.error]
    for r in errors:
        parts.append(Text(f"\n{r.job} › {r.key} failed:\n{r.error}", style="red"))
    where = [f"MLflow      {report.tracking_uri}", f"tables      {report.tables_root}"]
    for r in report.tasks:
        for k, v in r.result.items():
            if k.endswith(("_table", "table_path")) and isinstance(v, str) and v.startswith("/"):
                where.append(f"  {k:<18}{v}")
    for png in pngs:
        where.append(f"plot        {png}")
    where.append(f"summary     {summary_file}")
    parts.append(Text("\nWhere to look\n", style="bold") + Text("\n".join(dict.fromkeys(where))))
    return Group(*parts)


def write(report: RunReport, out_dir: Path, console: Console) -> Path:
    """Print the summary, and save it (text) with the metrics plot next to it. Returns the summary file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gm = group_metrics(report)
    pngs = []
    if gm is not None:
        pngs = [p for p in (metrics_png(gm, out_dir / "group_metrics.png"),
                            forecast_png(report, gm, out_dir / "forecasts.png")) if p]
    summary_file = out_dir / "summary.txt"
    body = render(report, pngs, summary_file)
    console.print(body)
    file_console = Console(file=open(summary_file, "w"), width=120, no_color=True)
    file_console.print(body)
    file_console.file.close()
    return summary_file
