"""## RQ2 in analysis.md: shared vs task-specific full layer. Experiment 1 (`task_specific`, a layer per
task) against Experiment 2 (`shared_layer`, one layer trained at every stage) on A, F, BWT and FWT, the
seed's two hypotheses (specific components serve each task better; a shared layer transfers better),
and the ablation `shared_layer_frozen` (one layer, trained at stage 1 only)."""

from __future__ import annotations

from hybridcl.report.collapse import collapse_warning, figure_cell
from hybridcl.report.comparisons import compare_figure, difference_text, leader_cell, missing_advice, verdict_bullet
from hybridcl.report.text import FIGURE_SHORT, NA, code, metric_label, number, spread_note, table
from hybridcl.report.verdicts import LEADER_NOTE, Comparison, compare
from hybridcl.report.view import RunView, StrategyView, Summary, mean_per_seed

SPECIFIC, SHARED, FROZEN = "task_specific", "shared_layer", "shared_layer_frozen"
COMPARED_FIGURES = ("average", "forgetting", "bwt", "fwt")


def section(run: RunView) -> list[str]:
    lines = ["## RQ2: Shared vs specific full layer (Experiment 1 vs Experiment 2)", ""]
    frozen = (
        " and `shared_layer_frozen` (one layer trained at stage 1, then frozen)" if FROZEN in run.strategies else ""
    )
    lines += [
        f"Compares `task_specific` (Experiment 1: a full layer per task) with `shared_layer` (Experiment 2: one "
        f"layer reused and trained at every stage){frozen} on A, F, BWT and FWT.",
        "",
    ]
    if SPECIFIC not in run.strategies or SHARED not in run.strategies:
        return lines + [missing_advice([n for n in (SPECIFIC, SHARED) if n not in run.strategies]), ""]
    lines += figure_bullets(run, run.primary)
    lines += hypotheses(run, run.primary)
    lines += ablation(run, run.primary)
    return lines + every_metric_table(run)


def figure_bullets(run: RunView, metric: str) -> list[str]:
    """One verdict bullet per figure, then the tally of the resolved ones."""
    lines, comparisons = [], []
    for figure in COMPARED_FIGURES:
        text, c = verdict_bullet(run, metric, figure, SPECIFIC, SHARED)
        lines.append(text)
        if c is None:
            continue
        comparisons.append(c)
        if c.tie and figure == "fwt" and len(run.tasks) == 2:
            lines.append(
                "  (With two tasks FWT only involves stage 1, which both strategies train identically, "
                "so equal FWT is expected.)"
            )
    return lines + ["", tally(comparisons, metric), ""]


def tally(comparisons: list[Comparison], metric: str) -> str:
    """How many of the figures each strategy wins, counting only the decided ones."""
    head = f"Tally on {metric_label(metric)} over these {len(COMPARED_FIGURES)} figures: "
    untested = sum(not c.decided and not c.no_difference and not c.tie for c in comparisons)
    no_difference = sum(c.no_difference for c in comparisons)
    ties = sum(c.tie for c in comparisons)
    rest = f"untested on {untested}, no difference found on {no_difference}, equal on {ties}"
    if len(comparisons) < len(COMPARED_FIGURES):
        rest += f", {NA} on {len(COMPARED_FIGURES) - len(comparisons)}"
    decided = [c for c in comparisons if c.decided]
    if not decided:
        return head + f"none resolved ({rest})."
    wins = {name: sum(c.winner == name for c in decided) for name in (SPECIFIC, SHARED)}
    return (
        head
        + f"resolved: {code(SPECIFIC)} better on {wins[SPECIFIC]}, {code(SHARED)} better on {wins[SHARED]}; {rest}."
    )


def diagonal_mean(run: RunView, strategy: StrategyView, metric: str) -> Summary | None:
    """Mean over tasks of R[j][j] (each task right after its own stage), seed by seed; None unless the
    strategy trains one task per stage and all its stages have rows."""
    cells, n_tasks = strategy.cells[metric], len(run.tasks)
    if n_tasks == 0 or strategy.stages != n_tasks or len(cells) < n_tasks + 1:
        return None
    return mean_per_seed([cells[j][j - 1] for j in range(1, n_tasks + 1)])


def hypotheses(run: RunView, metric: str) -> list[str]:
    """The seed's two RQ2 hypotheses, each checked against its figure."""
    lines = []
    specific, shared = run.strategies[SPECIFIC], run.strategies[SHARED]
    bootstrap = run.bootstrap(SPECIFIC, SHARED, metric, "diagonal")
    c = compare(
        SPECIFIC, diagonal_mean(run, specific, metric), SHARED, diagonal_mean(run, shared, metric), True, bootstrap
    )
    if c is not None:
        lines.append(diagonal_hypothesis(c, metric) + collapse_warning(run, (SPECIFIC, SHARED), "diagonal"))
    transfer = {fig: compare_figure(run, metric, fig, SPECIFIC, SHARED) for fig in ("fwt", "bwt")}
    if any(transfer.values()):
        lines.append(transfer_hypothesis(transfer, metric) + collapse_warning(run, (SPECIFIC, SHARED), "fwt", "bwt"))
    return lines + [""]


def diagonal_hypothesis(c: Comparison, metric: str) -> str:
    """'Task-specific components give better individual task performance', on the mean diagonal R[j][j]."""
    head = (
        f"- Hypothesis 'task-specific components give better individual task performance': each task right "
        f"after its own stage (mean of the diagonal R[j][j], {metric_label(metric)}): {difference_text(c)}; "
        f"{c.status}."
    )
    source = f" _Rests on the diagonal of `matrices_summary.{metric}`._"
    return head + f" The hypothesis is {hypothesis_outcome(c, c.a)}." + source


def hypothesis_outcome(c: Comparison, favoured: str) -> str:
    """What a comparison says of a hypothesis that `favoured` is ahead: 'supported' or 'not supported' only
    when resolved."""
    if c.decided:
        return "supported" if c.winner == favoured else "not supported"
    return "untested (no difference found)" if c.no_difference else "untested"


def transfer_hypothesis(transfer: dict[str, Comparison | None], metric: str) -> str:
    """'A shared full layer enables better cross-task transfer': supported on a figure only where shared_layer
    is ahead and the difference is decided."""
    parts, outcomes = [], {"supported": [], "not supported": [], "untested (no difference found)": [], "untested": []}
    for figure, c in transfer.items():
        if c is None:
            parts.append(f"{FIGURE_SHORT[figure]}: {NA}")
            continue
        values = f"equal ({number(c.sa.mean)})" if c.tie else difference_text(c)
        parts.append(f"{FIGURE_SHORT[figure]}: {values} ({c.status})")
        outcomes[hypothesis_outcome(c, c.b)].append(FIGURE_SHORT[figure])
    outcome = "; ".join(f"{v} on {' and '.join(figs)}" for v, figs in outcomes.items() if figs)
    return (
        f"- Hypothesis 'a shared full layer enables better cross-task transfer': {'; '.join(parts)}. "
        f"The hypothesis is {outcome}. _Rests on `cl.{metric}.fwt` and `cl.{metric}.bwt`._"
    )


def ablation(run: RunView, metric: str) -> list[str]:
    """`shared_layer_frozen` against both experiments on A and F, or the advice to add it."""
    if FROZEN not in run.strategies:
        return [
            "To separate 'shared' from 'keeps training', add `shared_layer_frozen` to the config's `strategies`.",
            "",
        ]
    lines = ["`shared_layer_frozen` (the ablation: the shared layer stops training after stage 1):", ""]
    for other in (SHARED, SPECIFIC):
        for figure in ("average", "forgetting"):
            lines.append(verdict_bullet(run, metric, figure, FROZEN, other)[0])
    return lines + [""]


def every_metric_table(run: RunView) -> list[str]:
    compared = [name for name in (SPECIFIC, SHARED, FROZEN) if name in run.strategies]
    lines = [
        f"Every metric ({spread_note(run)}; higher is better for A, BWT, FWT, lower for F; leader = {LEADER_NOTE}):",
        "",
    ]
    rows = []
    for metric in run.metrics:
        for figure in COMPARED_FIGURES:
            row = [metric_label(metric), FIGURE_SHORT[figure]] + [figure_cell(run, n, metric, figure) for n in compared]
            rows.append(row + [leader_cell(run, compared, metric, figure)])
    header = ["metric", "figure"] + [code(n) for n in compared] + ["leader"]
    return lines + table(header, rows, ["l", "l"] + ["r"] * len(compared) + ["l"])
