"""## RQ4 in analysis.md: continual learning. Among the sequential strategies, which forgets least (F, BWT)
and which transfers most to a task before training on it (FWT); the design check of the strategies that
never retrain a finished task; the references `full_finetune` (forgetting baseline) and `joint`
(multitask upper bound)."""

from __future__ import annotations

from hybridcl.report.collapse import collapse_warning, figure_cell
from hybridcl.report.comparisons import (
    compare_figure,
    difference_text,
    leader_cell,
    missing_advice,
    ranking_line,
    signed_difference,
)
from hybridcl.report.text import FIGURE_SHORT, NA, code, codes, count, mean_ci, metric_label, number, signed, table
from hybridcl.report.verdicts import HIGHER_IS_BETTER, LEADER_NOTE, Comparison
from hybridcl.report.view import RunView
from hybridcl.strategies import STRATEGIES

BASELINE, UPPER_BOUND = "full_finetune", "joint"
CLAIMS = {"forgetting": "Forgets least", "bwt": "Best backward transfer", "fwt": "Most forward transfer"}


def section(run: RunView) -> list[str]:
    lines = ["## RQ4: Continual learning (knowledge preservation and transfer)", ""]
    sequential = [name for name in run.names if name != UPPER_BOUND]
    lines += [
        f"Among the sequential strategies ({codes(sequential)}): which forgets least (F, lower is better; "
        "BWT, higher is better) and which transfers most to a task before training on it (FWT).",
        "",
    ]
    if not sequential:
        return lines + [missing_advice(["task_specific", "shared_layer"]), ""]
    metric = run.primary
    if len(run.tasks) < 2:
        lines += [
            f"With a single task there is no forgetting or transfer to measure: F, BWT and FWT are {NA}. "
            + ("Add a second language to `data.languages`." if run.direction else "Add a second task to `data.tasks`."),
            "",
        ]
    lines += [ranking(run, sequential, metric, figure) for figure in CLAIMS]
    lines.append("")
    lines += design_check(run, sequential, metric)
    lines += forgetting_baseline(run, sequential, metric)
    lines += upper_bound(run, sequential, metric)
    return lines + ["", *methods_table(run, sequential, metric), *leader_table(run, sequential)]


def ranking(run: RunView, sequential: list[str], metric: str, figure: str) -> str:
    """Which sequential strategy is ahead on F, BWT or FWT (the claim only when resolved)."""
    return ranking_line(
        run,
        run.figures(sequential, metric, figure),
        HIGHER_IS_BETTER[figure],
        metric=metric,
        label=FIGURE_SHORT[figure],
        claim=CLAIMS[figure],
        source=f"`cl.{metric}.{figure}`",
        figure=figure,
    )


def methods_table(run: RunView, sequential: list[str], metric: str) -> list[str]:
    """With continual-learning methods in the run (strategies that override a hook: replay, EWC, ...),
    every sequential strategy side by side, least forgetting first."""
    if not any(name in STRATEGIES and STRATEGIES[name].overridden_hooks() for name in sequential):
        return []
    figures = ("forgetting", "bwt", "fwt", "average")

    def forgetting(name: str) -> float:
        f = run.figure(name, metric, "forgetting")
        return float("inf") if f is None else f.mean

    rows = [
        [code(name)]
        + [figure_cell(run, name, metric, fig) for fig in figures]
        + [count(run.strategies[name].params.stored)]
        for name in sorted(sequential, key=forgetting)
    ]
    header = ["strategy", "F ↓", "BWT ↑", "FWT ↑", "A ↑", "stored parameters"]
    intro = f"The sequential strategies and the continual-learning methods side by side ({metric_label(metric)}):"
    return [intro, ""] + table(header, rows)


def leader_table(run: RunView, sequential: list[str]) -> list[str]:
    """The leader among the sequential strategies on F, BWT, FWT and A, for every metric."""
    figures = ("forgetting", "bwt", "fwt", "average")
    rows = [[metric_label(m)] + [leader_cell(run, sequential, m, fig) for fig in figures] for m in run.metrics]
    header = ["metric", "F ↓ leader", "BWT ↑ leader", "FWT ↑ leader", "A ↑ leader"]
    intro = f"Leader on each metric among the sequential strategies (leader = {LEADER_NOTE}):"
    return [intro, ""] + table(header, rows, ["l"] * 5)


def design_check(run: RunView, sequential: list[str], metric: str) -> list[str]:
    """The strategies that never train what evaluates a finished task should have F = BWT = 0."""
    lines = []
    for strategy in (run.strategies[name] for name in sequential):
        f, bwt = strategy.figure(metric, "forgetting"), strategy.figure(metric, "bwt")
        if not strategy.freezes_finished_tasks or f is None or bwt is None:
            continue
        if abs(f.mean) <= 1e-9 and abs(bwt.mean) <= 1e-9:
            lines.append(
                f"- {code(strategy.name)}: F = BWT = 0, as designed (a finished task's components are "
                "never touched again)."
            )
        else:
            lines.append(
                f"- Check: {code(strategy.name)} should not forget by design (its base is frozen and a "
                f"finished task's components are never touched), but F = {number(f.mean)}, BWT = "
                f"{number(bwt.mean)}: inspect the run."
            )
    return lines


def forgetting_baseline(run: RunView, sequential: list[str], metric: str) -> list[str]:
    """Each sequential strategy's F against `full_finetune`'s."""
    if BASELINE not in run.strategies:
        return ["- No classic forgetting baseline in this run: add `full_finetune` to the config's `strategies`."]
    if run.figure(BASELINE, metric, "forgetting") is None:
        return [f"- `full_finetune` (forgetting baseline): F is {NA}."]
    lines = []
    for name in (name for name in sequential if name != BASELINE):
        c = compare_figure(run, metric, "forgetting", name, BASELINE)
        if c is not None:
            lines.append(baseline_line(c) + collapse_warning(run, (name, BASELINE), "forgetting"))
    return lines


def baseline_line(c: Comparison) -> str:
    """A strategy's F against the `full_finetune` baseline (c compares them, the strategy first)."""
    if c.tie:
        return f"- {code(c.a)} has the same F as the `full_finetune` baseline (F = {number(c.sa.mean)})."
    if not c.decided:
        return f"- F against the `full_finetune` baseline: {difference_text(c)}; {c.status}."
    more_less = "less" if c.winner == c.a else "more"
    return (
        f"- {code(c.a)} forgets {number(abs(c.delta))} {more_less} than the `full_finetune` baseline "
        f"(F {mean_ci(c.sa)} vs {mean_ci(c.sb)}, {signed_difference(c)}); {c.status}."
    )


def upper_bound(run: RunView, sequential: list[str], metric: str) -> list[str]:
    """The gap between `joint` and the sequential strategy with the highest mean A."""
    if UPPER_BOUND not in run.strategies:
        return ["- No multitask upper bound in this run: add `joint` to the config's `strategies`."]
    joint = run.figure(UPPER_BOUND, metric, "average")
    scored = [(name, s) for name, s in run.figures(sequential, metric, "average").items() if s is not None]
    if joint is None or not scored:
        return [f"- Multitask upper bound `joint`: A is {NA}."]
    top_name, top = max(scored, key=lambda t: t[1].mean)
    gap = compare_figure(run, metric, "average", UPPER_BOUND, top_name)
    return [
        f"- Multitask upper bound `joint`: A = {mean_ci(joint)}; the sequential strategy with the highest mean "
        f"A, {code(top_name)}, has A = {mean_ci(top)}: gap (joint − it) {signed(gap.delta)}; "
        f"{gap.status}. _Rests on `cl.{metric}.average`._" + collapse_warning(run, (UPPER_BOUND, top_name), "average")
    ]
