"""When analysis.md may call a difference resolved, when it finds none, and when it must call it untested:
the rules, in one place.

Two strategies are compared on a figure through 95% intervals of their difference a − b:

- paired-bootstrap: over the evaluation examples, with any number of seeds, where the results hold it
  (`comparisons`, hybridcl.bootstrap: BLEU, from the stage records' per-example statistics);
- across-seed: the Student-t interval of the per-seed differences, with MIN_SEEDS_FOR_VERDICT seeds or more.

The rules:

- **resolved**: an interval excludes 0 on the side of the difference. Only then is a verdict written
  (better, holds, supported, a named leader); the sentence gives every interval and whether it
  excludes 0, so it says which one the verdict rests on.
- **no difference found**: no interval resolves it and |a − b| is smaller than the half-width
  (high − low) / 2 of every interval there is. Such a difference is never ranked.
- **untested**: any other case: the difference is within an interval but not within every half-width,
  or there is no interval at all (fewer than MIN_SEEDS_FOR_VERDICT seeds and no paired bootstrap).

A relative figure ('% of the lower value') is written only after the absolute difference and its
interval, and is n/a below cl_figures.SCORE_FLOOR.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hybridcl.bootstrap import MIN_SEEDS_FOR_VERDICT, seed_difference
from hybridcl.cl_figures import floor_reason
from hybridcl.report.text import NA, number, seed_count, signed
from hybridcl.report.view import Interval, Summary

TIE = 1e-12  # means closer than this are equal
HIGHER_IS_BETTER = {
    "average": True,
    "forgetting": False,
    "forgetting_rate": False,
    "bwt": True,
    "fwt": True,
    "diagonal": True,
}
# How analysis.md states the rules above: in its reading guide, and among its definitions.
RULES = (
    "A difference between strategies is *resolved*, and a verdict (better, holds, supported, a named leader) "
    "written, only when a 95% CI of the difference excludes 0: the paired bootstrap over the evaluation "
    f"examples (BLEU, any number of seeds) or the interval of the per-seed differences (at least "
    f"{MIN_SEEDS_FOR_VERDICT} seeds); each sentence gives the intervals it rests on. A difference within half "
    "the width of every interval there is reads *no difference found* and is not ranked; any other is "
    "*untested*, and the sentence says why. The paired bootstrap covers which examples were drawn, not "
    "training randomness: a verdict that rests on it alone says nothing about another seed."
)
RULES_DEFINITION = (
    "- Comparisons: 95% CIs of the difference a − b. Paired bootstrap (Koehn 2004): each task's evaluation "
    "examples resampled with replacement 1,000 times (seeded), the same resamples for both strategies and "
    "every stage and seed, BLEU recomputed from the examples' statistics, the figure computed on each "
    "resample (averaged over the seeds), the 2.5th and 97.5th percentiles of the differences. Across seeds: "
    f"the Student-t CI of the per-seed differences, from {MIN_SEEDS_FOR_VERDICT} seeds. Resolved: a CI excludes "
    "0. No difference found: |a − b| below half the width of every CI. Untested: anything else, or no CI."
)
LEADER_NOTE = (
    "the strategy ahead on the mean, named only when resolved against the next one (a 95% CI of the "
    "difference excludes 0)"
)


def seeds_interval(sa: Summary, sb: Summary) -> Interval | None:
    """The across-seed 95% interval of a − b (seeds paired), or None under MIN_SEEDS_FOR_VERDICT seeds."""
    difference = seed_difference(sa.values, sb.values)
    if difference is None:
        return None
    low, high = difference["ci95"]
    return Interval(low, high, "across-seed", seed_count(difference["n"]))


def interval_text(interval: Interval) -> str:
    return f"the {interval.name} 95% CI [{number(interval.low)}, {number(interval.high)}] ({interval.detail})"


def relative_text(difference: float, lower: float) -> str:
    """'relative difference x% of the lower value', or n/a with the reason when that value is below the
    score floor."""
    reason = floor_reason(lower, "the lower value")
    if reason:
        return f"relative difference {NA} ({reason})"
    return f"relative difference {100 * difference / lower:.1f}% of the lower value"


@dataclass(frozen=True)
class Comparison:
    """Strategy a against strategy b on one figure (`sa`, `sb`), with the 95% intervals of a − b there are:
    the difference, the one ahead on the mean (None on a tie), and what the rules make of it."""

    a: str
    sa: Summary
    b: str
    sb: Summary
    higher_is_better: bool
    intervals: tuple[Interval, ...] = ()

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

    def resolves(self, interval: Interval) -> bool:
        """Whether `interval` excludes 0 on the side of the difference."""
        return not self.tie and (interval.low > 0 if self.delta > 0 else interval.high < 0)

    def shows(self, interval: Interval) -> str:
        """What `interval` says of the difference, in words."""
        if interval.low <= 0 <= interval.high:
            return "includes 0"
        return "excludes 0" if self.resolves(interval) else "excludes 0 on the other side of the difference"

    @property
    def decided(self) -> bool:
        return any(self.resolves(i) for i in self.intervals)

    @property
    def no_difference(self) -> bool:
        """Not resolved, and smaller than the half-width of every interval (there is at least one); a tie is
        equal instead."""
        within = all(abs(self.delta) < i.half_width for i in self.intervals)
        return not self.tie and not self.decided and bool(self.intervals) and within

    @property
    def why_no_verdict(self) -> str | None:
        """None when resolved; else the status, which says why there is no verdict."""
        return None if self.decided else self.status

    @property
    def status(self) -> str:
        """'resolved: ...', 'no difference found: ...' or 'untested: ...', with every interval and what it
        shows, to end a sentence."""
        if not self.intervals:
            return f"untested: {seed_count(min(self.sa.n, self.sb.n))}, no paired bootstrap"
        if self.no_difference:
            within = " and ".join(interval_text(i) for i in self.intervals)
            return f"no difference found: |{signed(self.delta)}| is below half the width of {within}"
        shown = "; ".join(f"{interval_text(i)} {self.shows(i)}" for i in self.intervals)
        return f"{'resolved' if self.decided else 'untested'}: {shown}"

    @property
    def cell_status(self) -> str:
        """The status in a few words, for a table cell: 'resolved (paired-bootstrap [lo, hi])'."""
        if not self.intervals:
            return f"untested: {seed_count(min(self.sa.n, self.sb.n))}"
        outcome = "resolved" if self.decided else "no difference found" if self.no_difference else "untested"
        shown = "; ".join(f"{i.name} [{number(i.low)}, {number(i.high)}]" for i in self.intervals)
        return f"{outcome} ({shown})"


def compare(
    a: str, sa: Summary | None, b: str, sb: Summary | None, higher_is_better: bool, bootstrap: Interval | None = None
) -> Comparison | None:
    """The comparison of two strategies' figures, with the paired-bootstrap interval of a − b when there is
    one and the across-seed interval when there are enough seeds; None when either figure is null."""
    if sa is None or sb is None:
        return None
    intervals = tuple(i for i in (bootstrap, seeds_interval(sa, sb)) if i is not None)
    return Comparison(a, sa, b, sb, higher_is_better, intervals)


def untested_vs_zero(summary: Summary | None) -> str | None:
    """Why a per-seed contrast's sign carries no verdict, or None when its 95% CI excludes 0 over enough seeds."""
    if summary is None:
        return "no per-seed values"
    if summary.n < MIN_SEEDS_FOR_VERDICT:
        return seed_count(summary.n)
    low, high = summary.ci95
    return "its 95% CI includes 0" if low <= 0 <= high else None


def ranked(figures: Mapping[str, Summary | None], higher_is_better: bool) -> tuple[list[tuple[str, Summary]], int]:
    """The strategies with a value, ahead first, and how many are tied ahead."""
    scored = sorted(
        ((name, s) for name, s in figures.items() if s is not None), key=lambda t: t[1].mean, reverse=higher_is_better
    )
    top = scored[0][1].mean if scored else None
    return scored, sum(1 for _, s in scored if abs(s.mean - top) <= TIE)
