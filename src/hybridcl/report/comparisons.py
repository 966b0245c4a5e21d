"""The sentences and table cells that compare strategies, shared by the research questions (RQ1-RQ4).

Each applies the rules of verdicts.py: a verdict only when an interval of the difference resolves it,
'no difference found' (never ranked) when the difference is within every interval's half-width, else
both means, the difference and why it is untested. Every sentence names the figures it rests on and the
intervals it reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hybridcl.report.collapse import collapse_warning
from hybridcl.report.text import FIGURE_SHORT, NA, code, codes, mean_ci, metric_label, number, signed
from hybridcl.report.verdicts import HIGHER_IS_BETTER, Comparison, compare, ranked, relative_text
from hybridcl.report.view import RunView, Summary


def compare_figure(run: RunView, metric: str, figure: str, a: str, b: str) -> Comparison | None:
    """Strategies a and b on `cl.<metric>.<figure>`, with the results' paired bootstrap and the seeds'
    interval; None when either figure is null."""
    sa, sb = run.figure(a, metric, figure), run.figure(b, metric, figure)
    return compare(a, sa, b, sb, HIGHER_IS_BETTER[figure], run.bootstrap(a, b, metric, figure))


def signed_difference(c: Comparison) -> str:
    """'difference (`a` − `b`) +0.0123': the order the intervals of the status are in."""
    return f"difference ({code(c.a)} − {code(c.b)}) {signed(c.delta)}"


def difference_text(c: Comparison) -> str:
    """Both means (with intervals from 2 seeds on) and the signed difference, for a comparison without a verdict."""
    return f"{code(c.a)} {mean_ci(c.sa)} vs {code(c.b)} {mean_ci(c.sb)}, {signed_difference(c)}"


def relative_figure(c: Comparison, figure: str) -> str:
    """The difference as a share of the lower value, for A only, and only where an interval stands
    beside the difference."""
    if figure != "average" or not c.intervals:
        return ""
    return "; " + relative_text(abs(c.delta), min(c.sa.mean, c.sb.mean))


def verdict_bullet(run: RunView, metric: str, figure: str, a: str, b: str) -> tuple[str, Comparison | None]:
    """One bullet comparing strategies a and b on `figure` of `metric`: a verdict when it is decided,
    else the means and their difference, and what the intervals show."""
    higher = HIGHER_IS_BETTER[figure]
    head = f"**{FIGURE_SHORT[figure]}** ({metric_label(metric)}, {'higher' if higher else 'lower'} is better)"
    source = f"_Rests on `cl.{metric}.{figure}` of {code(a)} and {code(b)}._" + collapse_warning(run, [a, b], figure)
    c = compare_figure(run, metric, figure, a, b)
    if c is None:
        missing = [name for name in (a, b) if run.figure(name, metric, figure) is None]
        return f"- {head}: {NA} for {codes(missing)}, so no comparison. {source}", None
    if c.tie:
        return f"- {head}: {code(a)} and {code(b)} are equal ({number(c.sa.mean)}). {source}", c
    relative = relative_figure(c, figure)
    if not c.decided:
        return f"- {head}: {difference_text(c)}; {c.status}{relative}. {source}", c
    winner, loser = (c.sa, c.sb) if c.winner == a else (c.sb, c.sa)
    text = (
        f"- {head}: **{code(c.winner)}** is better, {mean_ci(winner)} vs {mean_ci(loser)} for {code(c.loser)} "
        f"({signed_difference(c)}); {c.status}{relative}. {source}"
    )
    return text, c


def leading_comparison(
    run: RunView,
    figures: Mapping[str, Summary | None],
    higher_is_better: bool,
    metric: str,
    bootstrap_figure: str | None,
) -> tuple[list[tuple[str, Summary]], int, Comparison | None]:
    """The strategies ranked (ahead first), how many are tied ahead, and the first of them against the next
    one (None when all are tied or fewer than two have a value). `bootstrap_figure`: the CL figure that
    `figures` are, whose paired bootstrap the results hold (None: they are not a CL figure)."""
    scored, tied = ranked(figures, higher_is_better)
    if len(scored) < 2 or tied == len(scored):
        return scored, tied, None
    (first, top), (second, runner_up) = scored[0], scored[tied]
    bootstrap = run.bootstrap(first, second, metric, bootstrap_figure) if bootstrap_figure else None
    return scored, tied, compare(first, top, second, runner_up, higher_is_better, bootstrap)


def leader_cell(run: RunView, names: Sequence[str], metric: str, figure: str) -> str:
    """A table cell: the strategy (or tied strategies) ahead on `cl.<metric>.<figure>`, when resolved against
    the next; else what the intervals show."""
    figures = run.figures(names, metric, figure)
    scored, tied, c = leading_comparison(run, figures, HIGHER_IS_BETTER[figure], metric, figure)
    if len(scored) < 2:
        return NA
    if c is None:
        return "all equal"
    return " = ".join(code(name) for name, _ in scored[:tied]) if c.decided else c.cell_status


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
    bootstrap: bool = True,
) -> str:
    """One bullet on which strategy is ahead on a figure (`label`, e.g. 'F'). `claim` ('Forgets least') heads
    it only when the leader is resolved against the next strategy; a difference too small for the intervals
    names no one; otherwise the bullet gives the means and the difference, untested. `figure` is the CL
    figure the values read (for the collapse warning); `bootstrap`: whether they are `cl.<metric>.<figure>`
    itself, so that the results' paired bootstrap applies."""
    scored, tied, c = leading_comparison(run, figures, higher_is_better, metric, figure if bootstrap else None)
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
    if c is None:
        return f"- {label}: all {len(scored)} strategies are equal ({number(value)}){na}. {src}{warning}"
    leaders = [name for name, _ in scored[:tied]]
    if c.no_difference:
        sides = f"{codes(leaders, ' = ')} ({mean_ci(top)}) vs {code(c.b)} ({mean_ci(c.sb)})"
        return f"- {label}: {sides}{na}, {signed_difference(c)}; {c.status}. {src}{warning}"
    after = f"next {code(c.b)} ({mean_ci(c.sb)}), {signed_difference(c)}; {c.status}"
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
