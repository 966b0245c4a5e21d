"""The sentences and table cells that compare strategies, shared by the research questions (RQ1-RQ4).

Each applies the rules of verdicts.py: a verdict only when the difference is resolved, else both means,
the difference and why it is untested. Every sentence names the figures it rests on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hybridcl.report.collapse import collapse_warning
from hybridcl.report.text import FIGURE_SHORT, NA, code, codes, mean_ci, metric_label, number, signed
from hybridcl.report.verdicts import HIGHER_IS_BETTER, Comparison, compare, ranked, relative_text, untested_reason
from hybridcl.report.view import RunView, Summary


def difference_text(c: Comparison) -> str:
    """Both means (with intervals from 2 seeds on) and the signed difference, for an untested comparison."""
    return (
        f"{code(c.a)} {mean_ci(c.sa)} vs {code(c.b)} {mean_ci(c.sb)}, "
        f"difference ({code(c.a)} − {code(c.b)}) {signed(c.delta)}"
    )


def verdict_bullet(run: RunView, metric: str, figure: str, a: str, b: str) -> tuple[str, Comparison | None]:
    """One bullet comparing strategies a and b on `figure` of `metric`: a verdict when it is decided,
    else the means and their difference, untested."""
    sa, sb = run.figure(a, metric, figure), run.figure(b, metric, figure)
    higher = HIGHER_IS_BETTER[figure]
    head = f"**{FIGURE_SHORT[figure]}** ({metric_label(metric)}, {'higher' if higher else 'lower'} is better)"
    source = f"_Rests on `cl.{metric}.{figure}` of {code(a)} and {code(b)}._" + collapse_warning(run, [a, b], figure)
    c = compare(a, sa, b, sb, higher)
    if c is None:
        missing = [name for name, s in ((a, sa), (b, sb)) if s is None]
        return f"- {head}: {NA} for {codes(missing)}, so no comparison. {source}", None
    if c.tie:
        return f"- {head}: {code(a)} and {code(b)} are equal ({number(c.sa.mean)}). {source}", c
    difference = abs(c.delta)
    relative = relative_text(difference, min(c.sa.mean, c.sb.mean)) if figure == "average" else ""
    if not c.decided:
        return f"- {head}: {difference_text(c)}{relative}; {c.status}. {source}", c
    winner, loser = (sa, sb) if c.winner == a else (sb, sa)
    text = (
        f"- {head}: **{code(c.winner)}** is better, {mean_ci(winner)} vs {mean_ci(loser)} for {code(c.loser)} "
        f"(difference {number(difference)}{relative}); {c.status}. {source}"
    )
    return text, c


def leader_cell(figures: Mapping[str, Summary | None], higher_is_better: bool) -> str:
    """A table cell: the strategy (or tied strategies) ahead, when resolved against the next; else why not."""
    scored, tied = ranked(figures, higher_is_better)
    if len(scored) < 2:
        return NA
    if tied == len(scored):
        return "all equal"
    reason = untested_reason(scored[0][1], scored[tied][1])
    return " = ".join(code(name) for name, _ in scored[:tied]) if reason is None else f"untested: {reason}"


def ranking_line(
    run: RunView,
    figures: Mapping[str, Summary | None],
    higher_is_better: bool,
    *,
    metric: str,
    label: str,
    claim: str,
    source: str,
    figure: str,
) -> str:
    """One bullet on which strategy is ahead on a figure (`label`, e.g. 'F'). `claim` ('Forgets least') heads
    it only when the leader is resolved against the next strategy; otherwise it gives the means and the
    difference, untested. `figure` is the CL figure the values read (for the collapse warning)."""
    scored, tied = ranked(figures, higher_is_better)
    src = f"_Rests on {source}._"
    side = "highest" if higher_is_better else "lowest"
    claim = f"{claim} ({side} {label}, {metric_label(metric)})"
    label = f"{label} ({metric_label(metric)}, {'higher' if higher_is_better else 'lower'} is better)"
    if not scored:
        return f"- {label}: {NA} for every strategy. {src}"
    missing = [name for name, s in figures.items() if s is None]
    na = f" ({NA} for {codes(missing)})" if missing else ""
    warning = collapse_warning(run, [name for name, _ in scored[: tied + 1]], figure)
    (first, top), value = scored[0], scored[0][1].mean
    if len(scored) == 1:
        return f"- {label}: only {code(first)} has a value ({mean_ci(top)}){na}, so no comparison. {src}{warning}"
    if tied == len(scored):
        return f"- {label}: all {len(scored)} strategies are equal ({number(value)}){na}. {src}{warning}"
    leaders = [name for name, _ in scored[:tied]]
    next_name, next_summary = scored[tied]
    c = Comparison(first, top, next_name, next_summary, higher_is_better)
    after = f"next {code(next_name)} ({mean_ci(next_summary)}), difference {number(abs(c.delta))}; {c.status}"
    if c.decided:
        lead = (
            f"tie between {' and '.join(f'**{code(n)}**' for n in leaders)} ({number(value)})"
            if tied > 1
            else f"**{code(first)}** ({mean_ci(top)})"
        )
        return f"- {claim}: {lead}{na}; {after}. {src}{warning}"
    return f"- {label}: {side} mean {codes(leaders, ' and ')} ({mean_ci(top)}){na}, {after}. {src}{warning}"


def missing_advice(missing: Sequence[str]) -> str:
    return (
        f"Not answerable from this run: add {codes(missing)} to the config's `strategies` (and rerun; finished "
        "stages are kept)."
    )
