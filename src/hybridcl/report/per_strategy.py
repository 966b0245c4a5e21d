"""## Per strategy in analysis.md: for each strategy its accuracy matrices, its outputs per evaluation,
its continual-learning figures, its parameter counts and its cost per stage."""

from __future__ import annotations

from hybridcl.cl_figures import FIGURES
from hybridcl.metrics.collapse import OUTPUT_STATS
from hybridcl.report.collapse import (
    FLAG_MARK,
    OUTPUT_STAT_NAMES,
    Cell,
    CellFlags,
    figure_cell,
    flag_rules,
    flagged_cells,
    flags_text,
    stat_cells,
)
from hybridcl.report.text import (
    FIGURE_HEADER,
    NA,
    byte_size,
    code,
    count,
    mean_std,
    mean_std_ci,
    metric_label,
    per_second,
    percent,
    seconds,
    spread_note,
    table,
)
from hybridcl.report.view import RunView, StageCost, StrategyView

MEMORY_KINDS = {"cuda_max_allocated": " (GPU)", "process_peak_rss": " (RSS)"}


def section(run: RunView) -> list[str]:
    lines = ["## Per strategy", ""]
    for strategy in run.strategies.values():
        lines += strategy_section(run, strategy)
    return lines


def strategy_section(run: RunView, strategy: StrategyView) -> list[str]:
    lines = [f"### {code(strategy.name)}: {strategy.label}", ""]
    lines += [f"Stages: {strategy.stages}; artifacts in `{strategy.results_dir}/`.", ""]
    flagged = flagged_cells(strategy)
    lines += matrices(run, strategy, flagged)
    lines += outputs_table(run, strategy, flagged)
    lines += [f"**Continual-learning figures** ({spread_note(run, ci=True)}):", ""]
    rows = [
        [metric_label(m)] + [figure_cell(run, strategy.name, m, fig, mean_std_ci) for fig in FIGURES]
        for m in run.table_metrics
    ]
    lines += table(["metric"] + FIGURE_HEADER, rows)
    return lines + parameters(run, strategy) + cost(run, strategy)


def matrices(run: RunView, strategy: StrategyView, flagged: dict[Cell, CellFlags]) -> list[str]:
    """The accuracy matrix of every metric, with the mark on flagged cells."""
    spread = f"mean ± std over {len(run.seeds)} seeds" if len(run.seeds) > 1 else "one seed"
    lines = [
        f"**Accuracy matrices** (row = after stage, column = task evaluated; {spread}; "
        f"{FLAG_MARK} = flagged outputs, see Outputs):",
        "",
    ]
    for metric in run.table_metrics:
        cells = strategy.cells[metric]
        if all(c is None for row in cells for c in row):
            lines += [f"*{metric_label(metric)}*: {NA} in every cell (not applicable to this run's targets)", ""]
            continue
        lines += [f"*{metric_label(metric)}*", ""]
        rows = [
            [strategy.stage_label(s)]
            + [
                mean_std(c) + (f" {FLAG_MARK}" if c is not None and (s, j) in flagged else "")
                for j, c in enumerate(row)
            ]
            for s, row in enumerate(cells)
        ]
        lines += table(["stage", *run.tasks], rows)
    return lines


def outputs_table(run: RunView, strategy: StrategyView, flagged: dict[Cell, CellFlags]) -> list[str]:
    """The output statistics of every evaluation, its pass rate (the share that parses as its own
    language) and its flags."""
    if not strategy.has_output_stats():
        return []
    pass_rates = strategy.cells.get("pass_rate")
    rows = [
        [strategy.stage_label(s), run.tasks[j]]
        + stat_cells(strategy, (s, j))
        + [mean_std(pass_rates[s][j]) if pass_rates else NA, flags_text(flagged.get((s, j), {}))]
        for s, row in enumerate(strategy.outputs["distinct_share"])
        for j in range(len(row))
    ]
    header = ["stage", "task"] + [OUTPUT_STAT_NAMES[stat] for stat in OUTPUT_STATS] + ["pass rate", "flags"]
    intro = f"**Outputs** per evaluation ({spread_note(run)}; {flag_rules()}; definitions at the end):"
    return [intro, ""] + table(header, rows, ["l", "l"] + ["r"] * (len(OUTPUT_STATS) + 1) + ["l"])


def parameters(run: RunView, strategy: StrategyView) -> list[str]:
    """Trainable parameters per stage, parameters stored, and A per million trainable parameters."""
    params = strategy.params
    rows = [
        [str(s.stage), "+".join(s.tasks), count(s.trainable), percent(s.trainable_pct_of_base)]
        for s in params.per_stage
    ]
    rows.append(["stored (all tasks)", params.stored_what, count(params.stored), percent(params.stored_pct_of_base)])
    efficiency = "; ".join(f"{metric_label(m)} {mean_std(strategy.efficiency[m])}" for m in run.metrics)
    return (
        ["**Parameters**:", ""]
        + table(["stage", "tasks", "trainable", "% of base"], rows, ["l", "l", "r", "r"])
        + [f"A per million trainable parameters (largest stage): {efficiency}.", ""]
    )


def _stage_name(row: StageCost) -> str:
    base = " (base, evaluation only)" if row.stage == 0 else ""
    shared = f" (shared with {code(row.shared_with)})" if row.shared_with else ""
    return f"{row.stage}{base}{shared}"


def cost(run: RunView, strategy: StrategyView) -> list[str]:
    """Wall time, throughput and peak memory of every stage's training and evaluation, and the totals."""
    rows = []
    for row in strategy.cost_stages:
        train, evaluation = row.train, row.eval
        rows.append(
            [
                _stage_name(row),
                mean_std(train.wall_time_s, seconds),
                mean_std(train.tokens_per_s, per_second),
                mean_std(train.peak_memory_bytes, byte_size) + MEMORY_KINDS.get(row.peak_memory_kind, ""),
                count(row.steps),
                count(row.examples),
                mean_std(evaluation.wall_time_s, seconds),
                mean_std(evaluation.tokens_per_s, per_second),
                mean_std(evaluation.peak_memory_bytes, byte_size),
            ]
        )
    header = [
        "stage",
        "train wall time",
        "train tokens/s",
        "train peak memory",
        "steps",
        "examples",
        "eval wall time",
        "eval tokens/s",
        "eval peak memory",
    ]
    return (
        [f"**Cost** per stage ({spread_note(run)}; tokens/s = tokens processed per second):", ""]
        + table(header, rows)
        + [
            f"Total: training {mean_std(strategy.train_wall_time_s, seconds)}, "
            f"evaluation {mean_std(strategy.eval_wall_time_s, seconds)}.",
            "",
        ]
    )
