"""The monitoring report: Markdown with the verdict tables, and PNG plots beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display on a job cluster
    import matplotlib.pyplot as plt

    return plt


def feature_plot(path: Path, feature: str, ref: np.ndarray, cur: np.ndarray, psi: float, drift: bool,
                 labels: dict[float, str] | None = None) -> list[str]:
    """``labels``: a categorical feature's code -> category (always bars, one per category seen).
    Returns the x tick labels drawn (empty for a histogram)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    both = np.concatenate([ref, cur]) if len(ref) + len(cur) else np.array([0.0])
    values = np.unique(both)
    ticks: list[str] = []
    if labels is not None or values.size <= 12:  # categories, flags: side-by-side bars of each value's share
        width = 0.4 * (np.min(np.diff(values)) if len(values) > 1 else 1.0)
        for shift, data, label in ((-width / 2, ref, "training"), (width / 2, cur, "served")):
            share = [(data == v).mean() if len(data) else 0.0 for v in values]
            ax.bar(values + shift, share, width=width, label=label)
        ticks = [labels.get(float(v), f"{v:g}") if labels else f"{v:g}" for v in values]
        ax.set_xticks(values, ticks, rotation=30 if labels and max(map(len, ticks)) > 6 else 0,
                      ha="right" if labels and max(map(len, ticks)) > 6 else "center")
        ax.set_ylabel("share of rows")
    else:
        edges = np.histogram_bin_edges(both, 30)
        ax.hist(ref, bins=edges, density=True, alpha=0.5, label="training")
        ax.hist(cur, bins=edges, density=True, alpha=0.5, label="served")
    ax.set_title(f"{feature}: PSI {psi:.3f}{'  DRIFT' if drift else ''}", color="crimson" if drift else "black")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return ticks


def group_psi_plot(path: Path, groups: pd.DataFrame, threshold: float,
                   xlabel: str = "PSI of served predictions vs the group's backtest predictions") -> None:
    plt = _plt()
    top = groups.dropna(subset=["psi"]).sort_values("psi", ascending=False).head(30)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.25 * len(top) + 1)))
    colors = ["crimson" if d else "steelblue" for d in top["drift"]]
    ax.barh(top["subject"][::-1], top["psi"][::-1], color=colors[::-1])
    ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlabel(xlabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _table(df: pd.DataFrame, cols: list[str]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return "n/a" if np.isnan(v) else f"{v:.3f}"
        if isinstance(v, (bool, np.bool_)):
            return "**DRIFT**" if v else "ok"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join(lines)


COLUMNS = ["subject", "psi", "threshold", "verdict", "drift", "n_ref", "n_cur", "ref_mean", "cur_mean"]


def markdown(title: str, meta: dict[str, str], versions: list[dict], images: list[str]) -> str:
    """One section per model (``## <name>``), one sub-section per version that served in the window."""
    out = [f"# {title}", ""]
    out += [f"- **{k}**: {v}" for k, v in meta.items()]
    for name in dict.fromkeys(v["model_name"] for v in versions):
        mine = [v for v in versions if v["model_name"] == name]
        out += ["", f"## {name} ({mine[0].get('job', 'forecast')})"]
        for v in mine:
            forecast = v.get("job", "forecast") == "forecast"
            groups = f" · groups: {v['n_groups']}" if forecast else ""
            out += ["", f"### version {v['model_version']}", "",
                    f"Reference: {v['reference']} · served rows: {v['rows']}{groups}", "",
                    "#### Features (PSI, " + ("served rows of groups whose model uses features vs training)"
                                              if forecast else "served rows vs training)"), "",
                    _table(v["features"], COLUMNS), ""]
            if forecast:
                out += ["#### Predictions per group (PSI vs the group's backtest predictions)", "",
                        _table(v["groups"].sort_values("psi", ascending=False, na_position="last").head(50), COLUMNS)]
            else:
                out += ["#### Score (PSI of the served probabilities vs the version's probabilities on its training "
                        "rows)", "", _table(v["groups"], COLUMNS)]
    if images:
        out += ["", "## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images]
    return "\n".join(out) + "\n"
