"""The end-of-run summary: what happened, the numbers, and where to look. Plus the PNG."""

from __future__ import annotations

from pathlib import Path

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = df[df.status == "ok"].dropna(subset=["wape", "baseline_wape"])
    if ok.empty:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = 20
    a.hist(ok.baseline_wape, bins=bins, alpha=0.6, label="naive seasonal baseline")
    a.hist(ok.wape, bins=bins, alpha=0.6, label="model")
    a.set(title=f"Validation WAPE per group ({len(ok)} ok of {len(df)})", xlabel="WAPE", ylabel="groups")
    a.legend()
    lim = float(max(ok.wape.max(), ok.baseline_wape.max()) * 1.05)
    b.scatter(ok.baseline_wape, ok.wape, s=14)
    b.plot([0, lim], [0, lim], "k--", lw=1, label="model = baseline")
    b.set(title="Model vs baseline, one dot per group", xlabel="baseline WAPE", ylabel="model WAPE",
          xlim=(0, lim), ylim=(0, lim))
    b.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _dist(s: pd.Series) -> str:
    s = s.dropna()
    if s.empty:
        return "-"
    q = s.quantile([0.1, 0.5, 0.9])
    return f"p10 {q[0.1]:.3f} · median {q[0.5]:.3f} · p90 {q[0.9]:.3f}"


def render(report: RunReport, png: Path | None, summary_file: Path) -> Group:
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
                 f"v{tm.get('model_version')}; training {tm.get('train_seconds')} s, tracking {tm.get('tracking_seconds')} s"]
        ok = gm[gm.status == "ok"]
        for m in ("wape", "baseline_wape", "mae", "rmse"):
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
            f"\n[bold]Scoring[/]: {sc['rows_scored']} rows in {sc['groups_scored']} groups with "
            f"{sc['model_name']} v{sc['model_version']}; groups without a model: {len(missing)}"
            + (f" ({', '.join(missing[:8])}{' …' if len(missing) > 8 else ''})" if missing else "")))
    errors = [r for r in report.tasks if r.error]
    for r in errors:
        parts.append(Text(f"\n{r.job} › {r.key} failed:\n{r.error}", style="red"))
    where = [f"MLflow      {report.tracking_uri}", f"tables      {report.tables_root}"]
    for r in report.tasks:
        for k, v in r.result.items():
            if k.endswith(("_table", "table_path")) and isinstance(v, str) and v.startswith("/"):
                where.append(f"  {k:<18}{v}")
    if png:
        where.append(f"plot        {png}")
    where.append(f"summary     {summary_file}")
    parts.append(Text("\nWhere to look\n", style="bold") + Text("\n".join(dict.fromkeys(where))))
    return Group(*parts)


def write(report: RunReport, out_dir: Path, console: Console) -> Path:
    """Print the summary, and save it (text) with the metrics plot next to it. Returns the summary file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    gm = group_metrics(report)
    png = metrics_png(gm, out_dir / "group_metrics.png") if gm is not None else None
    summary_file = out_dir / "summary.txt"
    body = render(report, png, summary_file)
    console.print(body)
    file_console = Console(file=open(summary_file, "w"), width=120, no_color=True)
    file_console.print(body)
    file_console.file.close()
    return summary_file
