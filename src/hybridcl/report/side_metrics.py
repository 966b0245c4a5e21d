"""The "Other definitions and parts" section of analysis.md: each headline metric's A beside the metrics
the registry shows next to it (CodeXGLUE's BLEU beside sacrebleu's, CodeBLEU's four parts beside
CodeBLEU), and every evaluation whose CodeBLEU counted a zero dataflow match as a full one."""

from __future__ import annotations

from hybridcl.report.collapse import figure_cell
from hybridcl.report.text import code, metric_label, table
from hybridcl.report.view import RunView


def section(run: RunView) -> list[str]:
    groups = {  # a group needs a metric the headline tables do not show already
        headline: scored
        for headline in run.metrics
        if set(scored := _scored(run, run.side_metrics.get(headline, ()))) - set(run.metrics)
    }
    flagged = {name: s.dataflow_counted_as_one for name, s in run.strategies.items() if s.dataflow_counted_as_one}
    if not groups and not flagged:
        return []
    lines = ["## Other definitions and parts", ""]
    for headline, side in groups.items():
        lines += [f"A (average after the last stage) on {metric_label(headline)} and beside it:", ""]
        metrics = (headline, *side)
        rows = [[code(name)] + [figure_cell(run, name, m, "average") for m in metrics] for name in run.names]
        lines += table(["strategy"] + [metric_label(m) for m in metrics], rows)
    lines += _dataflow_lines(flagged)
    return lines


def _scored(run: RunView, metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics some strategy has an A of (CodeXGLUE's smoothed BLEU has none for code targets)."""
    return tuple(m for m in metrics if any(run.figure(name, m, "average") for name in run.names))


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
