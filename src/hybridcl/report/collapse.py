"""Output checks (metrics/collapse.py) in analysis.md: the "Output checks" section at the top, the
definitions of the statistics, and the ⚠ that marks every table cell and every sentence resting on a
flagged evaluation.

An evaluation (stage, task) is flagged when, in some seed, its outputs collapsed (mostly copies, or
loops) or were cut off at the generation limit (truncated); its metric values then score those
outputs, not skill. Results written before a statistic existed lack it: the flags rest on what was
recorded, and the report names what was not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from hybridcl.metrics.collapse import (
    LOOP_MAX_BLOCK,
    LOOP_MIN_REPEATS,
    MAX_LOOPING_SHARE,
    MAX_TRUNCATED_SHARE,
    MIN_DISTINCT_SHARE,
    OUTPUT_STATS,
    is_collapsed,
    is_truncated,
)
from hybridcl.report.text import NA, code, mean_std, number, table
from hybridcl.report.view import RunView, StrategyView, Summary

FLAG_MARK = "⚠"
OUTPUT_STAT_NAMES = {
    "distinct_share": "distinct share",
    "looping_share": "looping share",
    "truncated_share": "truncated share",
    "length_ratio": "length ratio",
    "wrong_language_share": "wrong-language share",
}
FLAGS: dict[str, Callable[[Mapping[str, float | None]], bool]] = {"collapsed": is_collapsed, "truncated": is_truncated}
Cell = tuple[int, int]  # (stage, task column) of an accuracy matrix
CellFlags = dict[str, tuple[int, int]]  # flag -> (seeds flagged, seeds evaluated), for the flags raised


def flag_rules() -> str:
    return (
        f"collapsed = distinct share < {MIN_DISTINCT_SHARE} or looping share > {MAX_LOOPING_SHARE}; "
        f"truncated = truncated share > {MAX_TRUNCATED_SHARE}; in any seed"
    )


def definitions() -> list[str]:
    """The output statistics and the flags, for the Definitions section."""
    return [
        "Outputs of one evaluation (words: words/identifiers and single punctuation characters; subwords: "
        "the model's own generated tokens):",
        "",
        "- distinct share = distinct predictions / predictions (on words)",
        f"- looping share = share of predictions in which a block of 1 to {LOOP_MAX_BLOCK} subwords occurs "
        f"{LOOP_MIN_REPEATS} or more times back to back (`getgetgetget`, `_token_token_token_token`)",
        "- truncated share = share of predictions that ran to the generation limit (`eval.max_new_tokens`) "
        "without ending",
        "- length ratio = prediction words / reference words, over the whole set",
        "- wrong-language share = share of predictions that do not parse as the task's language but parse as "
        "another language with a grammar here (one that parses as both counts as its own); the share that "
        "parses as its own language is the pass rate",
        f"- {flag_rules()}. The metrics of a flagged evaluation score loops, copies or cut-off outputs, not "
        f"skill ({FLAG_MARK} marks them and every figure that reads them).",
        "",
    ]


def _seed_stats(strategy: StrategyView, cell: Cell) -> list[dict[str, float | None]]:
    """Each seed's recorded output statistics of one evaluation ([] when it has none)."""
    stage, task = cell
    summaries = {stat: strategy.outputs[stat][stage][task] for stat in OUTPUT_STATS if stat in strategy.outputs}
    if summaries.get("distinct_share") is None:
        return []
    seeds = len(summaries["distinct_share"].values)
    return [{stat: s.values[i] if s else None for stat, s in summaries.items()} for i in range(seeds)]


def cell_flags(strategy: StrategyView, cell: Cell) -> CellFlags:
    per_seed = _seed_stats(strategy, cell)
    counts = {flag: sum(map(rule, per_seed)) for flag, rule in FLAGS.items()}
    return {flag: (hits, len(per_seed)) for flag, hits in counts.items() if hits}


def flagged_cells(strategy: StrategyView) -> dict[Cell, CellFlags]:
    """(stage, task column) -> its flags, for every evaluation flagged in at least one seed."""
    cells = ((s, j) for s, row in enumerate(strategy.outputs.get("distinct_share", [])) for j in range(len(row)))
    return {cell: flags for cell in cells if (flags := cell_flags(strategy, cell))}


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


def flagged_in(strategy: StrategyView, *figures: str, metric: str | None = None) -> dict[Cell, CellFlags]:
    """The flagged cells of a strategy that any of `figures` reads, in order; of `metric`, only the tasks it
    applies to (the figures leave out the others)."""
    distinct = strategy.outputs.get("distinct_share")
    if not distinct:
        return {}
    read = set().union(*(figure_cells(figure, len(distinct), len(distinct[0])) for figure in figures))
    if metric is not None:
        applies = strategy.applies_to(metric)
        read = {cell for cell in read if cell[1] in applies}
    return {cell: flags for cell, flags in sorted(flagged_cells(strategy).items()) if cell in read}


def cell_label(run: RunView, strategy: StrategyView, cell: Cell) -> str:
    stage, task = cell
    return f"after stage {strategy.stage_label(stage)}, on {run.tasks[task]}"


def collapse_warning(run: RunView, names: Iterable[str], *figures: str) -> str:
    """A warning naming the flagged cells that `figures` read for these strategies, or ''."""
    hits = []
    for name in names:
        strategy = run.strategies[name]
        cells = flagged_in(strategy, *figures)
        if cells:
            where = "; ".join(f"{cell_label(run, strategy, c)}: {', '.join(flags)}" for c, flags in cells.items())
            hits.append(f"{code(name)} ({where})")
    if not hits:
        return ""
    return (
        f" {FLAG_MARK} Rests on flagged outputs of {', '.join(hits)}: there the metric scores loops, copies or "
        "cut-off outputs, not skill (see Output checks)."
    )


def figure_cell(
    run: RunView, name: str, metric: str, figure: str, show: Callable[[Summary | None], str] = mean_std
) -> str:
    """A CL figure in a table cell: n/a with the reason the results give for withholding it, and
    the mark when it rests on flagged outputs."""
    strategy = run.strategies[name]
    summary = strategy.figure(metric, figure)
    if summary is None:
        note = strategy.note(metric, figure)
        return f"{NA} ({note})" if note else NA
    return show(summary) + (f" {FLAG_MARK}" if flagged_in(strategy, figure, metric=metric) else "")


def flags_text(flags: CellFlags) -> str:
    """'no', or the flags in bold with the mark, each with (flagged seeds of evaluated seeds) when there are several."""
    if not flags:
        return "no"
    return ", ".join(f"**{flag}**{_seeds_note(*seeds)}" for flag, seeds in flags.items()) + f" {FLAG_MARK}"


def _seeds_note(flagged: int, evaluated: int) -> str:
    return f" ({flagged} of {evaluated} seeds)" if evaluated > 1 else ""


def stat_cells(strategy: StrategyView, cell: Cell) -> list[str]:
    """Each output statistic of one evaluation; n/a where the results do not record it."""
    stage, task = cell
    return [mean_std(strategy.outputs[stat][stage][task]) if stat in strategy.outputs else NA for stat in OUTPUT_STATS]


def unrecorded(run: RunView) -> list[str]:
    """The output statistics some strategy with output statistics lacks (results written before them)."""
    checked = [s for s in run.strategies.values() if s.has_output_stats()]
    return [stat for stat in OUTPUT_STATS if any(stat not in s.outputs for s in checked)]


def section(run: RunView) -> list[str]:
    """## Output checks: every flagged evaluation, before any figure that may rest on one."""
    if not run.names:
        return []
    lines = ["## Output checks", ""]
    if not any(s.has_output_stats() for s in run.strategies.values()):
        return lines + [
            "The results hold no output statistics, so collapsed outputs (copies, loops) and outputs cut off at "
            "the generation limit are not detected here: a metric below may score them rather than skill.",
            "",
        ]
    lines += [f"Every evaluation's outputs are checked ({flag_rules()}; definitions at the end).", ""]
    lines += _unrecorded_lines(run) + _wrong_language_lines(run)
    hits = [(s, cell, flags) for s in run.strategies.values() for cell, flags in flagged_cells(s).items()]
    if not hits:
        return lines + ["No evaluation is flagged (each strategy's Outputs table is under Per strategy).", ""]
    lines += [
        f"**Warning**: {len(hits)} evaluation(s) are flagged. Their metric values, and every figure marked "
        f"{FLAG_MARK} below, score loops, copies or cut-off outputs, not skill:",
        "",
    ]
    header = ["strategy", "after stage", "task", "flags"] + [OUTPUT_STAT_NAMES[stat] for stat in OUTPUT_STATS]
    rows = [
        [code(s.name), s.stage_label(cell[0]), run.tasks[cell[1]], flags_text(flags)] + stat_cells(s, cell)
        for s, cell, flags in hits
    ]
    return lines + table(header, rows, ["l", "l", "l", "l"] + ["r"] * len(OUTPUT_STATS))


def _unrecorded_lines(run: RunView) -> list[str]:
    missing = unrecorded(run)
    if not missing:
        return []
    names = ", ".join(OUTPUT_STAT_NAMES[stat] for stat in missing)
    return [
        f"These results do not record the {names} (they predate those checks): {NA} below, and the flags rest "
        "on the statistics recorded, so loops and cut-off outputs may go undetected here.",
        "",
    ]


def _wrong_language_lines(run: RunView) -> list[str]:
    """The evaluation with the largest wrong-language share (mean over seeds), when some output is in
    another language."""
    shares = [
        (summary.mean, strategy, (s, j))
        for strategy in run.strategies.values()
        for s, row in enumerate(strategy.outputs.get("wrong_language_share", []))
        for j, summary in enumerate(row)
        if summary is not None
    ]
    if not shares or max(share for share, _, _ in shares) == 0:
        return []
    share, strategy, cell = max(shares, key=lambda hit: hit[0])
    return [
        f"Outputs in another language (wrong-language share, e.g. Python for a JavaScript task): up to "
        f"{number(share)} of an evaluation's outputs ({code(strategy.name)}, {cell_label(run, strategy, cell)}); "
        "every evaluation's share is in its strategy's Outputs table.",
        "",
    ]
