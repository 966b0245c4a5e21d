"""How analysis.md writes numbers, summaries, names and tables: used by every section.

Scores are 0-1: fixed 4 decimals, and 3 significant digits below 0.01 (the BLEU of a tiny model is
about 0.001). A summary reads 'mean ± std' over several seeds, 'mean' over one, n/a when null.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from hybridcl.metrics.registry import REGISTRY
from hybridcl.report.view import RunView, Summary
from hybridcl.results import TASK_METRIC

NA = "n/a"
FIGURE_SHORT = {"average": "A", "forgetting": "F", "forgetting_rate": "forgetting rate", "bwt": "BWT", "fwt": "FWT"}
FIGURE_LONG = {
    "average": "A (average performance after the last stage)",
    "forgetting": "F (forgetting)",
    "forgetting_rate": "forgetting rate",
    "bwt": "BWT (backward transfer)",
    "fwt": "FWT (forward transfer)",
}
FIGURE_HEADER = ["A ↑", "F ↓", "forgetting rate ↓", "BWT ↑", "FWT ↑"]  # the columns of cl_figures.FIGURES


TASK_METRIC_LABEL = "each task's own metric"


def metric_label(metric: str) -> str:
    """The metric's display name from the metric registry ('BLEU', 'pass rate')."""
    if metric == TASK_METRIC:
        return TASK_METRIC_LABEL
    return REGISTRY[metric].label if metric in REGISTRY else metric


def task_metrics_text(run: RunView) -> str:
    """'`concode_none`: BLEU (CodeXGLUE), ...': the metric each task's column of TASK_METRIC holds."""
    return ", ".join(f"{code(task)}: {metric_label(info.headline)}" for task, info in run.task_info.items())


def number(x: float | None, digits: int = 4) -> str:
    """Fixed 4 decimals; values below 0.01 (e.g. BLEU of a tiny model) keep 3 significant digits."""
    if x is None:
        return NA
    x = float(x)
    if math.isnan(x):
        return NA
    if abs(x) < 1e-12:  # floating-point noise (e.g. the std of equal values)
        x = 0.0
    if x != 0 and round(abs(x), digits) < 0.01:
        return f"{x:.3g}"
    return f"{x:.{digits}f}"


def signed(x: float, digits: int = 4) -> str:
    x = 0.0 if abs(x) < 1e-12 else float(x)
    return f"{x:+.3g}" if x != 0 and round(abs(x), digits) < 0.01 else f"{x:+.{digits}f}"


def count(x: int | None) -> str:
    return NA if x is None else f"{int(x):,}"


def percent(x: float | None) -> str:
    return NA if x is None else f"{float(x):.2f}%"


def byte_size(x: float) -> str:
    x = float(x)
    for unit, size, digits in (("GiB", 2**30, 2), ("MiB", 2**20, 1), ("KiB", 2**10, 1)):
        if abs(x) >= size:
            return f"{x / size:.{digits}f} {unit}"
    return f"{x:.0f} B"


def seconds(x: float) -> str:
    return f"{float(x):.1f} s"


def per_second(x: float) -> str:
    return f"{float(x):,.0f}"


def mean_std(summary: Summary | Mapping[str, Any] | None, fmt: Callable[[float], str] = number) -> str:
    """'mean ± std' (several seeds), 'mean' (one seed) or n/a; `summary` as the view or the results hold it."""
    summary = Summary.of(summary)
    if summary is None:
        return NA
    if not summary.several:
        return fmt(summary.mean)
    mean, std = summary.mean, (0.0 if summary.std < 1e-12 else summary.std)
    if fmt is number and (mean == 0 or round(abs(mean), 4) >= 0.01) and (std == 0 or std >= 5e-5):
        return f"{number(mean)} ± {std:.4f}"  # the spread with the mean's decimals
    return f"{fmt(mean)} ± {fmt(std)}"


def ci_text(summary: Summary | None, fmt: Callable[[float], str] = number) -> str:
    """'[lo, hi]', the 95% CI; '1 seed' when there is none."""
    if summary is None:
        return NA
    if not summary.several:
        return "1 seed"
    low, high = summary.ci95
    return f"[{fmt(low)}, {fmt(high)}]"


def mean_ci(summary: Summary | None) -> str:
    """'mean [95% CI]' (several seeds) or 'mean' (one seed), for a sentence."""
    if summary is None:
        return NA
    return number(summary.mean) + (f" {ci_text(summary)}" if summary.several else "")


def mean_std_ci(summary: Summary | None, fmt: Callable[[float], str] = number) -> str:
    """'mean ± std [95% CI]' (several seeds) or 'mean' (one seed), for a table cell."""
    if summary is None or not summary.several:
        return mean_std(summary, fmt)
    return f"{mean_std(summary, fmt)} {ci_text(summary, fmt)}"


def seed_count(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def spread_note(run: RunView, ci: bool = False) -> str:
    """How a table's cells read: 'mean ± std over n seeds [95% CI]', or 'one seed'."""
    if len(run.seeds) <= 1:
        return "one seed: no spread or confidence interval"
    return f"mean ± std over {len(run.seeds)} seeds" + (" [95% CI]" if ci else "")


def code(name: str) -> str:
    return f"`{name}`"


def codes(names: Iterable[str], sep: str = ", ") -> str:
    return sep.join(code(name) for name in names)


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str] | None = None) -> list[str]:
    """A markdown table, then a blank line; `align` is 'l' or 'r' per column (default: first left)."""
    align = align or ["l"] + ["r"] * (len(header) - 1)
    separator = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(separator) + " |"]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines + [""]
