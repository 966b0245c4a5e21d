"""The "Other definitions and parts" section of analysis.md: each headline metric's A beside the metrics
the registry shows next to it and the tables do not (CodeXGLUE's BLEU beside sacrebleu's), how much of
CodeBLEU is its dataflow part when that is more than half, and every evaluation whose CodeBLEU counted
a zero dataflow match as a full one. CodeBLEU's four parts stand beside it in the tables themselves
(`RunView.table_metrics`)."""

from __future__ import annotations

from hybridcl.metrics.codebleu import WEIGHTS
from hybridcl.report.collapse import figure_cell
from hybridcl.report.text import code, metric_label, number, table
from hybridcl.report.view import CODEBLEU_PARTS, RunView

# The dataflow part is stated when it is more than this share of CodeBLEU.
DATAFLOW_SHARE_STATED = 0.5


def section(run: RunView) -> list[str]:
    shown = set(run.table_metrics)
    groups = {  # a group needs a metric the tables do not show already
        headline: scored
        for headline in run.metrics
        if set(scored := _scored(run, run.side_metrics.get(headline, ()))) - shown
    }
    flagged = {name: s.dataflow_counted_as_one for name, s in run.strategies.items() if s.dataflow_counted_as_one}
    dataflow = _dataflow_share_lines(run)
    if not groups and not flagged and not dataflow:
        return []
    lines = ["## Other definitions and parts", ""]
    for headline, side in groups.items():
        metrics = (headline, *(m for m in side if m not in shown))
        lines += [f"A (average after the last stage) on {metric_label(headline)} and beside it:", ""]
        rows = [[code(name)] + [figure_cell(run, name, m, "average") for m in metrics] for name in run.names]
        lines += table(["strategy"] + [metric_label(m) for m in metrics], rows)
    return lines + dataflow + _dataflow_lines(flagged)


def _scored(run: RunView, metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics some strategy has an A of (CodeXGLUE's smoothed BLEU has none for code targets)."""
    return tuple(m for m in metrics if any(run.figure(name, m, "average") for name in run.names))


def dataflow_share(run: RunView, name: str) -> float | None:
    """The share of a strategy's CodeBLEU A that its dataflow part makes up, as codebleu counts it (a zero
    dataflow match as 1): 1 - (the other three parts' weighted A) / CodeBLEU's A; None without them."""
    figures = [run.figure(name, m, "average") for m in ("codebleu", *CODEBLEU_PARTS[:3])]
    if any(f is None for f in figures) or not figures[0].mean:
        return None
    codebleu, *others = (f.mean for f in figures)
    return 1 - sum(w * part for w, part in zip(WEIGHTS, others)) / codebleu


def _dataflow_share_lines(run: RunView) -> list[str]:
    """One sentence, when the dataflow part is more than half of some strategy's CodeBLEU A."""
    if not {"codebleu", *CODEBLEU_PARTS} <= set(run.table_metrics):  # results without the parts
        return []
    shares = {name: share for name in run.names if (share := dataflow_share(run, name)) is not None}
    over = {name: share for name, share in shares.items() if share > DATAFLOW_SHARE_STATED}
    if not over:
        return []
    each = ", ".join(f"{code(name)} {number(share)}" for name, share in over.items())
    return [
        f"CodeBLEU here is mostly its dataflow part: the dataflow part (0.25 × dataflow match, a match of 0 "
        f"counted as 1) is more than half of CodeBLEU's A for {len(over)} of {len(shares)} strategies ({each}; "
        "share = 1 − 0.25 × (n-gram + weighted n-gram + AST similarity) / CodeBLEU). There a change in CodeBLEU "
        "can be a change in the dataflow match alone, with tokens and syntax no closer: read it with its parts, "
        "which stand beside it in the tables.",
        "",
    ]


def _dataflow_lines(flagged: dict) -> list[str]:
    if not flagged:
        return []
    lines = [
        "CodeBLEU counted a dataflow match of 0 as 1 (codebleu 0.7.0 weighs `dataflow_match_score or 1`), "
        "so its combined score is too high, in these evaluations:",
        "",
    ]
    for name, cells in flagged.items():
        where = "; ".join(f"seed {c['seed']} stage {c['stage']} {c['task']}" for c in cells)
        lines.append(f"- {code(name)}: {where}")
    return lines + [""]
