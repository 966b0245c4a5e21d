"""Collapsed outputs (metrics/collapse.py): the "Collapsed outputs" section of analysis.md, and the ⚠
that marks every table cell and every sentence resting on a collapsed evaluation.

An evaluation (stage, task) is collapsed when, in some seed, its outputs are mostly one string or
loops; its metric values then measure the collapse, not skill.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hybridcl.metrics.collapse import MAX_REPETITION_RATE, MIN_DISTINCT_SHARE, OUTPUT_STATS, is_collapsed
from hybridcl.report.text import NA, code, mean_std
from hybridcl.report.view import RunView, StrategyView, Summary

COLLAPSE_MARK = "⚠"
OUTPUT_STAT_NAMES = {
    "distinct_share": "distinct share",
    "repetition_rate": "repetition rate",
    "length_ratio": "length ratio",
}
Cell = tuple[int, int]  # (stage, task column) of an accuracy matrix


def collapse_rule() -> str:
    return f"collapsed = distinct share < {MIN_DISTINCT_SHARE} or repetition rate > {MAX_REPETITION_RATE} in a seed"


def collapsed_cells(strategy: StrategyView) -> dict[Cell, tuple[int, int]]:
    """(stage, task column) -> (seeds whose outputs collapsed there, seeds evaluated), for every cell
    that collapsed in at least one seed."""
    collapsed = {}
    for s, row in enumerate(strategy.outputs.get("distinct_share", [])):
        for j, distinct in enumerate(row):
            if distinct is None:
                continue
            repetition = strategy.outputs["repetition_rate"][s][j]
            repetitions = [None] * len(distinct.values) if repetition is None else repetition.values
            flags = [
                is_collapsed({"distinct_share": d, "repetition_rate": r}) for d, r in zip(distinct.values, repetitions)
            ]
            if any(flags):
                collapsed[s, j] = (sum(flags), len(flags))
    return collapsed


def figure_cells(figure: str, rows: int, tasks: int) -> set[Cell]:
    """The cells of R that a figure reads (cl_figures' formulas); 'diagonal' is R[j][j]."""
    last, earlier = rows - 1, range(tasks - 1)
    if figure == "average":
        return {(last, j) for j in range(tasks)}
    if figure == "forgetting":
        return {(s, j) for j in earlier for s in range(j + 1, rows)}
    if figure in ("forgetting_rate", "bwt"):
        return {(s, j) for j in earlier for s in (j + 1, last)}
    if figure == "fwt":
        return {(s, j) for j in range(1, tasks) for s in (0, j)}
    return {(j + 1, j) for j in range(tasks)}


def collapsed_in(strategy: StrategyView, *figures: str) -> list[Cell]:
    """The collapsed cells of a strategy that any of `figures` reads."""
    distinct = strategy.outputs.get("distinct_share")
    if not distinct:
        return []
    read = set().union(*(figure_cells(figure, len(distinct), len(distinct[0])) for figure in figures))
    return sorted(cell for cell in collapsed_cells(strategy) if cell in read)


def cell_label(run: RunView, strategy: StrategyView, cell: Cell) -> str:
    stage, task = cell
    return f"after stage {strategy.stage_label(stage)}, on {run.tasks[task]}"


def collapse_warning(run: RunView, names: Iterable[str], *figures: str) -> str:
    """A warning naming the collapsed cells that `figures` read for these strategies, or ''."""
    hits = []
    for name in names:
        strategy = run.strategies[name]
        cells = collapsed_in(strategy, *figures)
        if cells:
            hits.append(f"{code(name)} ({'; '.join(cell_label(run, strategy, c) for c in cells)})")
    if not hits:
        return ""
    return (
        f" {COLLAPSE_MARK} Rests on collapsed outputs of {', '.join(hits)}: there the metric measures the "
        "collapse, not skill (see Collapsed outputs)."
    )


def figure_cell(
    run: RunView, name: str, metric: str, figure: str, show: Callable[[Summary | None], str] = mean_std
) -> str:
    """A CL figure in a table cell: n/a with the reason the results give for withholding it, and
    the collapse mark when it rests on collapsed outputs."""
    strategy = run.strategies[name]
    summary = strategy.figure(metric, figure)
    if summary is None:
        note = strategy.note(metric, figure)
        return f"{NA} ({note})" if note else NA
    return show(summary) + (f" {COLLAPSE_MARK}" if collapsed_in(strategy, figure) else "")


def output_stats_text(strategy: StrategyView, cell: Cell) -> str:
    """'distinct share x, repetition rate y, length ratio z' of one evaluation."""
    stage, task = cell
    return ", ".join(
        f"{OUTPUT_STAT_NAMES[stat]} {mean_std(strategy.outputs[stat][stage][task])}" for stat in OUTPUT_STATS
    )


def section(run: RunView) -> list[str]:
    """## Collapsed outputs: every collapsed evaluation, before any figure that may rest on one."""
    if not run.names:
        return []
    lines = ["## Collapsed outputs", ""]
    if not any(s.has_output_stats() for s in run.strategies.values()):
        return lines + [
            "The results hold no output statistics (distinct share, repetition rate, length ratio), "
            "so collapsed outputs (one string for every input, loops) are not detected here: a "
            "metric below may measure a collapse rather than skill.",
            "",
        ]
    hits = [(s, cell, seeds) for s in run.strategies.values() for cell, seeds in sorted(collapsed_cells(s).items())]
    if not hits:
        return lines + [
            f"No evaluation's outputs collapsed ({collapse_rule()}; each strategy's table is under Per strategy).",
            "",
        ]
    lines += [
        f"**Warning**: in {len(hits)} evaluation(s) the model's outputs collapsed ({collapse_rule()}): "
        "it emits one string for most inputs, or loops. Their metric values, and every figure marked "
        f"{COLLAPSE_MARK} below, measure the collapse, not skill:",
        "",
    ]
    for strategy, cell, (collapsed, seeds) in hits:
        where = f" (collapsed in {collapsed} of {seeds} seeds)" if seeds > 1 else ""
        lines.append(
            f"- {code(strategy.name)}, {cell_label(run, strategy, cell)}: {output_stats_text(strategy, cell)}{where}"
        )
    return lines + [""]
