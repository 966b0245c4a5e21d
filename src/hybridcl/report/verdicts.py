"""When analysis.md may call a difference resolved, and when it must call it untested: the rules, in one place.

A verdict (a strategy called better, a hypothesis said to hold or not, a strategy named as leader)
needs MIN_SEEDS_FOR_VERDICT seeds on both sides and 95% confidence intervals (Student t, across
seeds) that do not overlap. Otherwise the sentence gives both means and their difference and says why
it is untested. A difference as a percentage of a score is n/a below cl_figures.SCORE_FLOOR.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hybridcl.cl_figures import floor_reason
from hybridcl.report.text import NA, seed_count
from hybridcl.report.view import Summary

# Two seeds estimate the spread from a single difference (one degree of freedom): two seeds that happen
# to agree give intervals that separate on nothing. Three is the fewest seeds a verdict may rest on.
MIN_SEEDS_FOR_VERDICT = 3
TIE = 1e-12  # means closer than this are equal
HIGHER_IS_BETTER = {"average": True, "forgetting": False, "forgetting_rate": False, "bwt": True, "fwt": True}
LEADER_NOTE = (
    f"the strategy ahead on the mean, named only when resolved against the next one "
    f"(at least {MIN_SEEDS_FOR_VERDICT} seeds, separate 95% CIs)"
)


def too_few_seeds(n: int) -> str | None:
    """'1 seed' or '2 seeds' when n is too few for a verdict, else None."""
    return seed_count(n) if n < MIN_SEEDS_FOR_VERDICT else None


def untested_reason(a: Summary | Mapping[str, Any], b: Summary | Mapping[str, Any]) -> str | None:
    """Why the difference of two summaries carries no verdict ('1 seed', '95% CIs overlap'), or None when
    it does: MIN_SEEDS_FOR_VERDICT seeds on both sides and 95% CIs that do not overlap (equal means overlap)."""
    a, b = Summary.of(a), Summary.of(b)
    few = too_few_seeds(min(a.n, b.n))
    if few:
        return few
    (a_low, a_high), (b_low, b_high) = a.ci95, b.ci95
    return "95% CIs overlap" if a_low <= b_high and b_low <= a_high else None


def status(a: Summary, b: Summary) -> str:
    """'resolved: ...' or 'untested: <why>', to end a sentence or fill a table cell."""
    reason = untested_reason(a, b)
    return f"untested: {reason}" if reason else f"resolved: 95% CIs separate over {seed_count(min(a.n, b.n))}"


def untested_vs_zero(summary: Summary | None) -> str | None:
    """Why a per-seed contrast's sign carries no verdict, or None when its 95% CI excludes 0 over enough seeds."""
    if summary is None:
        return "no per-seed values"
    few = too_few_seeds(summary.n)
    if few:
        return few
    low, high = summary.ci95
    return "its 95% CI includes 0" if low <= 0 <= high else None


def relative_text(difference: float, lower: float) -> str:
    """', x% of the lower value', or n/a with the reason when that value is below the score floor."""
    reason = floor_reason(lower, "the lower value")
    if reason:
        return f", relative difference {NA} ({reason})"
    return f", {100 * difference / lower:.1f}% of the lower value"


@dataclass(frozen=True)
class Comparison:
    """Strategy a against strategy b on one figure (`sa`, `sb`): the difference a − b, the one ahead on
    the mean (None on a tie), and whether that may be called a verdict (`decided`)."""

    a: str
    sa: Summary
    b: str
    sb: Summary
    higher_is_better: bool

    @property
    def delta(self) -> float:
        return self.sa.mean - self.sb.mean

    @property
    def tie(self) -> bool:
        return abs(self.delta) <= TIE

    @property
    def winner(self) -> str | None:
        if self.tie:
            return None
        return self.a if (self.sa.mean > self.sb.mean) == self.higher_is_better else self.b

    @property
    def loser(self) -> str | None:
        return None if self.tie else self.b if self.winner == self.a else self.a

    @property
    def untested(self) -> str | None:
        return untested_reason(self.sa, self.sb)

    @property
    def decided(self) -> bool:
        return self.untested is None

    @property
    def status(self) -> str:
        return status(self.sa, self.sb)


def compare(a: str, sa: Summary | None, b: str, sb: Summary | None, higher_is_better: bool) -> Comparison | None:
    """The comparison of two strategies' figures; None when either is null."""
    return None if sa is None or sb is None else Comparison(a, sa, b, sb, higher_is_better)


def ranked(figures: Mapping[str, Summary | None], higher_is_better: bool) -> tuple[list[tuple[str, Summary]], int]:
    """The strategies with a value, ahead first, and how many are tied ahead."""
    scored = sorted(
        ((name, s) for name, s in figures.items() if s is not None), key=lambda t: t[1].mean, reverse=higher_is_better
    )
    top = scored[0][1].mean if scored else None
    return scored, sum(1 for _, s in scored if abs(s.mean - top) <= TIE)
