"""The capacity sweep's summary as readers see it: its table (`sweep_summary.md`, and RQ3's in every
point's analysis.md), its Pareto plot, and the sweep a run folder is a point of.

`hybridcl.sweep` runs the points and computes the summary; this module only reads and draws it, so the
report needs nothing of the runner.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hybridcl.atomic import atomic_path

SUMMARY_JSON, SUMMARY_MD, PARETO_PNG = "sweep_summary.json", "sweep_summary.md", "sweep_pareto.png"
PARAMETER_AXES = {"trainable": "trainable parameters (largest stage)", "stored": "stored parameters (all tasks)"}


SUMMARY_HEADER = ("point", "strategy", "trainable", "stored", "A", "95% CI", "seeds", "front")


def summary_markdown(summary: dict) -> str:
    grid = ", ".join(f"{key} in {values}" for key, values in summary["grid"].items())
    lines = [
        f"# Capacity sweep: {summary['config']}",
        "",
        f"Grid: {grid}. A = average {summary['metric'].upper()} after the last stage (mean ± std over seeds, "
        "95% CI). Trainable: the largest stage's. Front: on the Pareto front of A against trainable (T) or "
        "stored (S) parameters.",
        "",
        *([partial_line(summary["partial"]), ""] if summary.get("partial") else []),
        "| " + " | ".join(SUMMARY_HEADER) + " |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(summary)]
    return "\n".join(lines) + "\n"


def partial_line(partial: dict) -> str:
    """What a summary written before its sweep finished leaves out (`hybridcl sweep FOLDER --summarize`)."""
    return (
        f"**Partial**: {partial['finished']} of {partial['points']} points had finished when this was written; "
        f"the fronts may change. Not yet finished: {', '.join(partial['missing'])}."
    )


def summary_rows(summary: dict) -> list[list[str]]:
    """One row of SUMMARY_HEADER per point and strategy (the summary table, and RQ3's in analysis.md)."""
    return [
        [row["point"], name, f"{entry['trainable']:,}", f"{entry['stored']:,}"]
        + _score_cells(entry["average"])
        + [_front_cell(entry["pareto"])]
        for row in summary["points"]
        for name, entry in row["strategies"].items()
    ]


def _score_cells(average: dict | None) -> list[str]:
    if average is None:
        return ["n/a", "n/a", "0"]
    low, high = average["ci95"]
    return [f"{average['mean']:.4f} ± {average['std']:.4f}", f"[{low:.4f}, {high:.4f}]", str(average["n"])]


def enclosing_sweep(run_dir: str | Path) -> dict | None:
    """The summary of the sweep `run_dir` is a point of (its parent's sweep_summary.json), or None."""
    path = Path(run_dir).resolve().parent / SUMMARY_JSON
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    return summary if any(row["point"] == Path(run_dir).resolve().name for row in summary["points"]) else None


def _front_cell(pareto: dict[str, bool]) -> str:
    return "+".join(mark for axis, mark in (("trainable", "T"), ("stored", "S")) if pareto[axis])


def plot_pareto(summary: dict, path: Path) -> None:
    """Two panels, A against trainable and against stored parameters (log x), the front as a step line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(fig)
    for ax, (axis, label) in zip(fig.subplots(1, 2), PARAMETER_AXES.items()):
        _pareto_panel(ax, summary, axis, label)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    partial = summary.get("partial")
    of = f" (partial: {partial['finished']} of {partial['points']} points)" if partial else ""
    fig.suptitle(f"Capacity sweep{of}: A ({summary['metric'].upper()}) against parameters; bars: 95% CI")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _pareto_panel(ax: Any, summary: dict, axis: str, label: str) -> None:
    strategies = dict.fromkeys(name for row in summary["points"] for name in row["strategies"])
    for name in strategies:
        entries = [row["strategies"][name] for row in summary["points"] if name in row["strategies"]]
        entries = [entry for entry in entries if entry["average"]]
        means = [entry["average"]["mean"] for entry in entries]
        below = [mean - entry["average"]["ci95"][0] for mean, entry in zip(means, entries)]
        above = [entry["average"]["ci95"][1] - mean for mean, entry in zip(means, entries)]
        xs = [entry[axis] for entry in entries]
        ax.errorbar(xs, means, yerr=[below, above], fmt="o", capsize=3, label=name)
    front = sorted(
        (entry[axis], entry["average"]["mean"], row["point"])
        for row in summary["points"]
        for entry in row["strategies"].values()
        if entry["pareto"][axis]
    )
    if front:
        xs, ys, names = zip(*front)
        ax.plot(xs, ys, drawstyle="steps-post", color="grey", linestyle="--", label="Pareto front")
        ax.scatter(xs, ys, s=160, facecolors="none", edgecolors="black")
        for x, y, name in front:
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 6), fontsize=6)
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel(f"A: average {summary['metric'].upper()} after the last stage")
    ax.grid(alpha=0.3)
