"""`plots/*.png` of a run, and the notes in analysis.md's "Plots" section for the figures that could not be
drawn: accuracy matrices (one per metric), forgetting and transfer, score vs parameters, training loss.

Scales: every accuracy metric is on 0-1, so a matrix's colour scale starts at 0 and ends at the first
step of COLOUR_SCALE_TOPS that holds the largest value (the whole 0-1 when every value is 0); the colour
bar names that range. Signed figures (F, BWT, FWT) get a y-axis symmetric around 0, and A a y-axis from 0.
Error bars are 95% CIs across seeds, drawn only where a figure has two seeds or more; a legend or title
mentions only what the figure shows.

Each `*_figure` function builds its matplotlib Figure (None: nothing to draw), which `write_plots` saves.
matplotlib is imported inside the functions (importing the report stays light), and only its object API
on the Agg canvas is used: no pyplot, no global backend switch. Each file is written atomically.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

from hybridcl.atomic import atomic_path
from hybridcl.report.text import NA, metric_label
from hybridcl.report.view import Cells, RunView, StrategyView, Summary
from hybridcl.run_files import PLOTS_DIR

PLOT_PATTERNS = ("accuracy_matrix_*.png", "forgetting_*.png", "score_vs_params_*.png", "loss_curves.png")
TRANSFER_FIGURES = ("forgetting", "bwt", "fwt")
TRANSFER_STYLE = {  # bar colour and legend
    "forgetting": ("#d62728", "F: forgetting (lower is better)"),
    "bwt": ("#1f77b4", "BWT: backward transfer (higher is better)"),
    "fwt": ("#2ca02c", "FWT: forward transfer (higher is better)"),
}
BAR_WIDTH = 0.26
COLOUR_SCALE_TOPS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def write_plots(run: RunView, run_dir: Path) -> tuple[list[Path], list[str]]:
    """Draw every plot the results allow into run_dir/plots; returns (files written, notes on the others)."""
    plots = [
        (f"accuracy_matrix_{metric}.png", partial(matrices_figure, run, metric),
         f"No accuracy-matrix plot for {metric_label(metric)}: {NA} in every cell.")
        for metric in run.metrics
    ]  # fmt: skip
    if run.primary:
        plots += [
            (f"forgetting_{run.primary}.png", partial(forgetting_figure, run, run.primary),
             f"No forgetting plot: F, BWT and FWT are {NA} for every strategy (one task, `joint` only, or unfinished)."),
            (f"score_vs_params_{run.primary}.png", partial(score_vs_params_figure, run, run.primary),
             f"No score-vs-parameters plot: A or parameter counts are {NA}."),
        ]  # fmt: skip
    plots.append(
        ("loss_curves.png", partial(losses_figure, run), "No training-loss plot: the results hold no loss curves.")
    )
    written, notes = [], []
    for name, draw, note in plots:
        fig = draw()
        if fig is None:
            notes.append(note)
            continue
        path = run_dir / PLOTS_DIR / name
        _save(fig, path)
        written.append(path)
    # A plot of an earlier report that this one did not redraw (a figure now n/a) would be stale: remove it.
    # Only this module's own file names are touched.
    for pattern in PLOT_PATTERNS:
        for old in (run_dir / PLOTS_DIR).glob(pattern):
            if old not in written:
                old.unlink()
    return written, notes


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _short(x: float) -> str:
    """A value label on a plot: 3 decimals, or 2 significant digits below 0.01."""
    return f"{x:.3f}" if x == 0 or abs(x) >= 0.01 else f"{x:.2g}"


def _seed_note(run: RunView) -> str:
    return f"mean over {len(run.seeds)} seeds" if len(run.seeds) > 1 else "one seed"


def _ci_note(summaries: list[Summary]) -> str:
    """The title's mention of error bars, when some of `summaries` (those drawn) has them."""
    return "; error bars: 95% CI across seeds" if any(s.several for s in summaries) else ""


def _error_bar(s: Summary) -> tuple[float, float]:
    """(below, above) the mean: the 95% CI, or nothing with one seed."""
    low, high = s.ci95 if s.several else (s.mean, s.mean)
    return max(0.0, s.mean - low), max(0.0, high - s.mean)


def colour_scale(values: list[float]) -> tuple[float, float]:
    """(vmin, vmax) of a 0-1 metric's heatmap: 0 up to the first of COLOUR_SCALE_TOPS that holds every value."""
    top = max(values)
    if top <= 0:  # an all-zero matrix: the metric's whole range, not a band around 0
        return 0.0, 1.0
    return 0.0, next((step for step in COLOUR_SCALE_TOPS if step >= top), top)


def matrices_figure(run: RunView, metric: str) -> Any:
    """One heatmap of the accuracy matrix per strategy, on a shared colour scale from 0 (`colour_scale`)."""
    panels = [
        (s, s.cells[metric])
        for s in run.strategies.values()
        if any(c is not None for row in s.cells[metric] for c in row)
    ]
    if not panels:
        return None
    values = [c.mean for _, cells in panels for row in cells for c in row if c is not None]
    vmin, vmax = colour_scale(values)
    n_tasks = max(len(cells[0]) for _, cells in panels)
    max_rows = max(len(cells) for _, cells in panels)
    ncols = min(len(panels), 4)
    nrows = math.ceil(len(panels) / ncols)
    # Enough decimals for the largest value to show 3 significant digits (BLEU of a tiny model is ~0.001).
    top = max(abs(v) for v in values) or 1.0
    decimals = min(6, max(3, 2 - math.floor(math.log10(top))))
    cell_w = (1.25 if len(run.seeds) > 1 else 1.0) + 0.12 * (decimals - 3)
    fig = _figure(ncols * (cell_w * n_tasks + 1.6) + 1.2, nrows * (0.62 * max_rows + 1.3) + 0.8)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    image = None
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.set_visible(False)
            continue
        image = _matrix_panel(ax, run, *panels[k], (vmin, vmax), decimals)
    shown = "" if vmax == 1.0 else f"\ncolours span 0–{vmax:g}"
    label = f"{metric_label(metric)} (0–1, higher is better){shown}"
    fig.colorbar(image, ax=axes.ravel().tolist(), label=label, shrink=0.9)
    has_na = any(c is None for _, cells in panels for row in cells for c in row)
    fig.suptitle(
        f"Accuracy matrix R: {metric_label(metric)} ({_seed_note(run)}{'; grey = n/a' if has_na else ''})", fontsize=11
    )
    return fig


def _matrix_panel(
    ax: Any, run: RunView, strategy: StrategyView, cells: Cells, scale: tuple[float, float], decimals: int
) -> Any:
    import numpy as np
    from matplotlib import colormaps

    vmin, vmax = scale
    grid = np.array([[np.nan if c is None else c.mean for c in row] for row in cells], dtype=float)
    cmap = colormaps["viridis"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for s, row in enumerate(cells):
        for j, c in enumerate(row):
            if c is None:
                ax.text(j, s, NA, ha="center", va="center", fontsize=9, color="#444444")
                continue
            text = f"{c.mean:.{decimals}f}" + (f"\n±{c.std:.{decimals}f}" if c.several else "")
            light = (c.mean - vmin) / (vmax - vmin) < 0.6
            ax.text(j, s, text, ha="center", va="center", fontsize=10, color="white" if light else "black")
    # Stream task names (`translate_java-cs`) are wider than a cell: slanted, they do not run into each other.
    slant = {"rotation": 20, "ha": "right", "rotation_mode": "anchor"} if max(map(len, run.tasks)) > 10 else {}
    ax.set_xticks(range(len(cells[0])), labels=run.tasks, **slant)
    ax.set_yticks(range(len(cells)), labels=[strategy.stage_label(s) for s in range(len(cells))])
    ax.set_xlabel("task evaluated")
    ax.set_ylabel("after stage")
    ax.set_title(strategy.name, fontsize=10, fontweight="bold")
    return image


def forgetting_figure(run: RunView, metric: str) -> Any:
    """F, BWT and FWT of every strategy, as grouped bars with their 95% CIs, on a y-axis symmetric around 0."""
    import numpy as np

    strategies = list(run.strategies.values())
    has_any = [any(s.figure(metric, f) is not None for f in TRANSFER_FIGURES) for s in strategies]
    if not any(has_any):
        return None
    fig = _figure(max(6.5, 1.5 * len(strategies) + 2.5), 4.6)
    ax = fig.subplots()
    x = np.arange(len(strategies))
    for i, s in enumerate(strategies):
        if not has_any[i]:  # e.g. joint: one label for the group
            label = f"{NA}\n(one stage)" if s.stages == 1 else NA
            ax.text(x[i], 0, label, ha="center", va="bottom", fontsize=9, color="#555555")
    drawn = []
    for k, figure in enumerate(TRANSFER_FIGURES):
        summaries = [s.figure(metric, figure) for s in strategies]
        _transfer_bars(ax, figure, summaries, x + (k - 1) * BAR_WIDTH, has_any)
        drawn += [s for s in summaries if s is not None]
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlim(-0.6, len(strategies) - 0.4)
    ax.margins(y=0.12)
    bound = max(abs(limit) for limit in ax.get_ylim())
    ax.set_ylim(-bound, bound)
    ax.set_xticks(x, labels=run.names, rotation=15 if len(strategies) > 3 else 0)
    ax.set_ylabel(f"{metric_label(metric)} difference (0–1 scale)")
    ax.set_xlabel("strategy")
    label = metric_label(metric)
    breaks = "\n" if len(label) > 20 else " "  # a long label ("each task's own metric") would run off the plot
    title = f"Forgetting and transfer on {label}{breaks}({_seed_note(run)}{_ci_note(drawn)})"
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    return fig


def _transfer_bars(ax: Any, figure: str, summaries: list[Summary | None], positions: Any, has_any: list[bool]) -> None:
    """One figure's bar per strategy, with 95% CI error bars; n/a where a strategy with other figures lacks it."""
    xs, means, errors = [], [], ([], [])
    for summary, position, labelled in zip(summaries, positions, has_any):
        if summary is None:
            if labelled:
                ax.text(position, 0, NA, ha="center", va="bottom", fontsize=7, color="#555555")
            continue
        below, above = _error_bar(summary)
        xs.append(position)
        means.append(summary.mean)
        errors[0].append(below)
        errors[1].append(above)
    if not xs:  # no strategy has this figure: no bars, no legend entry
        return
    has_ci = any(e > 0 for side in errors for e in side)
    color, label = TRANSFER_STYLE[figure]
    bars = ax.bar(xs, means, BAR_WIDTH, yerr=errors if has_ci else None, capsize=3, color=color, label=label)
    ax.bar_label(bars, labels=[_short(m) for m in means], fontsize=7, padding=2)


def score_vs_params_figure(run: RunView, metric: str) -> Any:
    """A against trainable parameters per stage, and against parameters stored (log scales), from a y of 0,
    with the base model's A (stage 0) as a dashed line."""
    shown = [(s, s.figure(metric, "average")) for s in run.strategies.values()]
    shown = [(s, a) for s, a in shown if a is not None]
    if not shown:
        return None
    panels = (
        ("trainable parameters per stage (largest stage; log scale)", lambda s: s.params.trainable_max),
        ("parameters stored for all tasks (log scale)", lambda s: s.params.stored),
    )
    colors = {name: f"C{i}" for i, name in enumerate(run.names)}
    fig = _figure(11.5, 4.8)
    axes = fig.subplots(1, 2, sharey=True)
    base = run.base_average(metric)
    for ax, (xlabel, params) in zip(axes, panels):
        _score_panel(ax, [(s.name, float(params(s)), a) for s, a in shown], colors)
        if base is not None:
            _base_line(ax, base)
        ax.set_xlabel(xlabel)
    axes[0].set_ylim(bottom=0)  # shared: both panels
    if base is not None:
        axes[0].legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel(f"A: {metric_label(metric)} after the last stage (0–1)")
    title = f"Score vs parameters: {metric_label(metric)} ({_seed_note(run)}{_ci_note([a for _, a in shown])})"
    left_out = [name for name in run.names if name not in {s.name for s, _ in shown}]
    if left_out:
        title += f"\nnot shown (A {NA}): {', '.join(left_out)}"
    fig.suptitle(title, fontsize=11)
    return fig


def _base_line(ax: Any, base: Summary) -> None:
    """Stage 0, the base model's A (the mean of its row), with its 95% CI as a band when seeds differ."""
    label = f"stage 0, the base model ({_short(base.mean)})"
    if base.several and base.ci95[1] > base.ci95[0]:
        ax.axhspan(*base.ci95, color="grey", alpha=0.15, linewidth=0)
        label += ", band: 95% CI"
    ax.axhline(base.mean, color="grey", linestyle="--", linewidth=1.2, label=label)


def _score_panel(ax: Any, points: list[tuple[str, float, Summary]], colors: dict[str, str]) -> None:
    from matplotlib.ticker import NullFormatter

    groups: dict[float, list] = {}
    for point in points:
        groups.setdefault(round(math.log10(point[1]), 2), []).append(point)
    for group in groups.values():
        # Points sharing an x position (e.g. strategies with equal stage sizes): labels alternate right / left,
        # so neighbours do not collide.
        group.sort(key=lambda point: point[2].mean)
        for k, (name, params, a) in enumerate(group):
            yerr = [[value] for value in _error_bar(a)] if a.several else None
            ax.errorbar([params], [a.mean], yerr=yerr, fmt="o", color=colors[name], capsize=3, markersize=7)
            right = k % 2 == 0
            ax.annotate(
                f"{name} ({_short(a.mean)})",
                (params, a.mean),
                xytext=(8 if right else -8, 0),
                textcoords="offset points",
                ha="left" if right else "right",
                va="center",
                fontsize=8.5,
                color=colors[name],
            )
    xs = [params for _, params, _ in points]
    ax.set_xscale("log")
    ax.set_xlim(min(xs) / 8, max(xs) * 8)
    ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a narrow log range
    ax.margins(y=0.1)
    ax.grid(alpha=0.3, which="both")


def losses_figure(run: RunView) -> Any:
    """The training loss of every stage of every strategy, stages one after the other (the first seed)."""
    panels = [
        (s, [(stage, losses) for stage, losses in sorted(s.loss_curves.items()) if losses])
        for s in run.strategies.values()
    ]
    panels = [(s, series) for s, series in panels if series]
    if not panels:
        return None
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(6.2 * ncols, 3.2 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.set_visible(False)
            continue
        _loss_panel(ax, *panels[k])
    seed = f" (seed {run.seeds[0]})" if run.seeds else ""
    fig.suptitle(f"Training loss per strategy and stage{seed}", fontsize=11)
    return fig


def _loss_panel(ax: Any, strategy: StrategyView, series: list[tuple[int, list[float]]]) -> None:
    import numpy as np

    offset = 0
    for k, (stage, losses) in enumerate(series):
        y = np.asarray(losses, dtype=float)
        x = offset + np.arange(1, len(y) + 1)
        color = f"C{k}"
        window = max(1, len(y) // 40)
        label = f"stage {strategy.stage_label(stage)}"
        if window > 1:
            ax.plot(x, y, color=color, alpha=0.25, linewidth=0.8)
            smooth = np.convolve(np.nan_to_num(y, nan=np.nanmean(y)), np.ones(window) / window, mode="valid")
            ax.plot(x[window - 1 :], smooth, color=color, linewidth=1.8, label=label + f" ({window}-step mean)")
        else:
            ax.plot(x, y, color=color, linewidth=1.6, marker="." if len(y) < 30 else None, label=label)
        if k > 0:
            ax.axvline(offset + 0.5, color="grey", linestyle=":", linewidth=1)
        offset += len(y)
    ax.set_title(strategy.name, fontsize=10, fontweight="bold")
    ax.set_xlabel("optimizer step (cumulative over stages)")
    ax.set_ylabel("training loss (token cross-entropy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
