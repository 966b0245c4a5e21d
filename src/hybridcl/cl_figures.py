"""The continual-learning figures of docs/design.md section 3, and their summaries across seeds.

The accuracy matrix R has one row per stage (row 0 = before any training, row s = after stage s) and
one column per task, in training order; higher is better. With N tasks (columns), tasks are numbered
j = 1..N in the formulas, so task j is column j - 1 and "R[s][j]" below is ``R[s][j - 1]`` in code.

- average performance  A    = mean_j R[S][j]                 (S = last stage)
- forgetting           F    = mean_{j<N} max_{s in j..N-1} R[s][j] - R[N][j]      (Chaudhry et al. 2018)
- forgetting rate           = mean_{j<N} (R[j][j] - R[N][j]) / R[j][j]; None when an R[j][j] < SCORE_FLOOR
- backward transfer    BWT  = mean_{j<N} R[N][j] - R[j][j]     (Lopez-Paz & Ranzato 2017)
- forward transfer     FWT  = mean_{j>1} R[j-1][j] - R[0][j]

F, the forgetting rate, BWT and FWT need the sequential protocol: one stage per task, i.e. S == N
(N + 1 rows). Otherwise (``joint``: S = 1 with N > 1 tasks, or a run whose last stages are still
missing) they are None, as they are with a single task (there is no j < N, and no j > 1).

A cell that is None (or NaN) means "not applicable" or "not computed yet". A column whose every cell is
None is a task the metric does not apply to (CodeBLEU on a summarisation task's natural-language
targets): each figure is then taken over the other tasks, each keeping its index j (its stage), so
CodeBLEU's A of a stream whose third of four tasks is summarisation is mean(R[4][1], R[4][2], R[4][4]),
and its F the mean of F_1 and F_2. With no task left, the figure is None. A column with some cells None
and some not is "not computed yet": a figure that needs such a cell is None. Figures are plain Python
floats.

A relative figure (the forgetting rate) divides by a score; below SCORE_FLOOR that score is noise and
the ratio meaningless (a "forgetting rate" of -5.12 came from dividing by a near-zero own-stage BLEU),
so the figure is None, and ``summarize_cl`` says why in its ``notes``.

Across seeds (``summarize``): mean, sample standard deviation (n - 1) and the Student-t 95%
confidence interval of the mean, mean +- t_{0.975, n-1} * std / sqrt(n), with the exact quantile from
scipy's Student-t distribution. One value gives std 0 and the interval [x, x].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

FIGURES = ("average", "forgetting", "forgetting_rate", "bwt", "fwt")

# The smallest score a relative figure may divide by. Scores are on a 0-1 scale; 0.01 is one BLEU
# point, about what chance n-gram overlap gives an untrained model. Over a denominator of at least
# 0.01, an absolute wobble of 0.001 moves a ratio by at most 0.1; over 0.0004 it moves it by 2.5.
SCORE_FLOOR = 0.01

Matrix = Sequence[Sequence[Any]]


def t_critical(df: int) -> float:
    """t_{0.975, df}: the multiplier of the standard error in a two-sided 95% interval."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    from scipy.stats import t  # half a second to import: paid only when there are several seeds

    return float(t.ppf(0.975, df))


def _value(x: Any) -> float | None:
    """A cell as a float, or None when it is missing / not applicable (None or NaN)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _rows(R: Matrix) -> list[list[float | None]]:
    rows = [[_value(x) for x in row] for row in R]
    if not rows:
        raise ValueError("accuracy matrix has no rows (stage 0 is always present)")
    widths = {len(row) for row in rows}
    if len(widths) != 1 or 0 in widths:
        raise ValueError(f"accuracy matrix rows must all have the same, non-zero length; got lengths {sorted(widths)}")
    return rows


def _applicable(rows: list[list[float | None]], tasks: range) -> list[int]:
    """The tasks j (1-based) in `tasks` that the metric applies to: their column has a value in some row."""
    return [j for j in tasks if any(row[j - 1] is not None for row in rows)]


def _mean(xs: list[float | None]) -> float | None:
    if not xs or any(x is None for x in xs):
        return None
    return sum(xs) / len(xs)


def _sequential(R: Matrix) -> tuple[list[list[float | None]], int] | None:
    """(rows, N) when R follows the one-stage-per-task protocol (N + 1 rows) with N >= 2, else None."""
    rows = _rows(R)
    n = len(rows[0])
    if n < 2 or len(rows) != n + 1:
        return None
    return rows, n


def average(R: Matrix) -> float | None:
    """A = mean_j R[S][j], over the last row (S = number of stages; S = N when sequential)."""
    rows = _rows(R)
    return _mean([rows[-1][j - 1] for j in _applicable(rows, range(1, len(rows[0]) + 1))])


def forgetting(R: Matrix) -> float | None:
    """F = mean_{j<N} F_j, F_j = max_{s in j..N-1} R[s][j] - R[N][j]; None when N == 1 or S != N."""
    seq = _sequential(R)
    if seq is None:
        return None
    rows, n = seq
    per_task = []
    for j in _applicable(rows, range(1, n)):  # tasks 1..N-1 (1-based)
        col = j - 1
        seen = [rows[s][col] for s in range(j, n)]  # stages j..N-1
        final = rows[n][col]
        if final is None or any(x is None for x in seen):
            return None
        per_task.append(max(seen) - final)
    return _mean(per_task)


def _learned_and_final(R: Matrix) -> list[tuple[float, float]] | None:
    """(R[j][j], R[N][j]) for each task j < N; None when not sequential or a value is missing."""
    seq = _sequential(R)
    if seq is None:
        return None
    rows, n = seq
    pairs = [(rows[j][j - 1], rows[n][j - 1]) for j in _applicable(rows, range(1, n))]
    return None if not pairs or any(x is None for pair in pairs for x in pair) else pairs


def floor_reason(denominator: float, what: str = "denominator") -> str | None:
    """Why a ratio over `denominator` is not reported (it is below SCORE_FLOOR), or None when it may be."""
    return None if denominator >= SCORE_FLOOR else f"{what} {denominator:.2g} is below the floor {SCORE_FLOOR}"


def _lowest_own_stage_score(R: Matrix) -> float | None:
    """min_{j<N} R[j][j], the forgetting rate's denominators; None when the rate is undefined anyway."""
    pairs = _learned_and_final(R)
    return None if pairs is None else min(learned for learned, _ in pairs)


def forgetting_rate(R: Matrix) -> float | None:
    """mean_{j<N} (R[j][j] - R[N][j]) / R[j][j]; None when an R[j][j] is below SCORE_FLOOR."""
    pairs = _learned_and_final(R)
    if pairs is None or floor_reason(min(learned for learned, _ in pairs)):
        return None
    return _mean([(learned - final) / learned for learned, final in pairs])


def bwt(R: Matrix) -> float | None:
    """BWT = mean_{j<N} R[N][j] - R[j][j]; None when N == 1 or S != N."""
    pairs = _learned_and_final(R)
    return None if pairs is None else _mean([final - learned for learned, final in pairs])


def fwt(R: Matrix) -> float | None:
    """FWT = mean_{j>1} R[j-1][j] - R[0][j]; None when N == 1 or S != N."""
    seq = _sequential(R)
    if seq is None:
        return None
    rows, n = seq
    diffs = []
    for j in _applicable(rows, range(2, n + 1)):  # tasks 2..N (1-based)
        col = j - 1
        before, base = rows[j - 1][col], rows[0][col]
        if before is None or base is None:
            return None
        diffs.append(before - base)
    return _mean(diffs)


def cl_figures(R: Matrix) -> dict[str, float | None]:
    """All five figures of one matrix: {"average", "forgetting", "forgetting_rate", "bwt", "fwt"}."""
    return {
        "average": average(R),
        "forgetting": forgetting(R),
        "forgetting_rate": forgetting_rate(R),
        "bwt": bwt(R),
        "fwt": fwt(R),
    }


def summarize(values: Sequence[float | None]) -> dict[str, Any] | None:
    """{"mean", "std", "ci95": [lo, hi], "n", "values"} over the seeds' values; None if none is a number.

    None / NaN values (a seed where the figure does not apply or is not computed yet) are left out of
    mean, std and interval, and `n` counts the values used; `values` keeps every seed's value, in the
    order given (so it stays aligned with the run's `seeds`), with None where there was none.
    """
    all_values = [_value(v) for v in values]
    xs = [v for v in all_values if v is not None]
    if not xs:
        return None
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        std, half = 0.0, 0.0
    else:
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
        half = t_critical(n - 1) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n, "values": all_values}


def summarize_matrices(
    per_seed: Sequence[Matrix],
) -> tuple[list[list[float | None]], list[list[dict[str, Any] | None]]]:
    """Cell by cell over seeds: (mean matrix, matrix of summaries). A cell None in every seed stays None.

    Seeds may have different numbers of rows (an interrupted run where some seeds are a stage ahead):
    a row missing in a seed counts as None cells for that seed. All seeds must have the same tasks.
    """
    if not per_seed:
        raise ValueError("summarize_matrices needs at least one seed's matrix")
    seeds = [_rows(R) for R in per_seed]
    widths = {len(rows[0]) for rows in seeds}
    if len(widths) != 1:
        raise ValueError(f"all seeds' matrices must have the same number of tasks (columns); got {sorted(widths)}")
    n_tasks = widths.pop()
    n_rows = max(len(rows) for rows in seeds)
    mean_matrix: list[list[float | None]] = []
    summary_matrix: list[list[dict[str, Any] | None]] = []
    for s in range(n_rows):
        mean_row, summary_row = [], []
        for col in range(n_tasks):
            cell = summarize([rows[s][col] if s < len(rows) else None for rows in seeds])
            summary_row.append(cell)
            mean_row.append(None if cell is None else cell["mean"])
        mean_matrix.append(mean_row)
        summary_matrix.append(summary_row)
    return mean_matrix, summary_matrix


def _forgetting_rate_note(per_seed: Sequence[Matrix]) -> str | None:
    """Why the forgetting rate is None: an own-stage score below the floor in some seed, or None."""
    low = [x for R in per_seed if (x := _lowest_own_stage_score(R)) is not None and floor_reason(x)]
    if not low:
        return None
    where = f" in {len(low)} of {len(per_seed)} seeds" if len(per_seed) > 1 else ""
    return floor_reason(min(low), "own-stage score") + where


def summarize_cl(per_seed: Sequence[Matrix]) -> dict[str, Any]:
    """The five figures computed on each seed's matrix, then summarised across seeds, plus
    ``notes``: {figure: why it is None} for a figure withheld on purpose (below SCORE_FLOOR).

    Figures are computed per seed and then averaged (not computed on the mean matrix), so the
    interval reflects the seed-to-seed spread of the figure itself. Note that for F (a max) the mean
    over seeds can differ from F of the mean matrix. A forgetting rate that is below the floor in
    one seed is None for all: a mean over the other seeds would leave out exactly the weakest ones.
    """
    per_seed_figures = [cl_figures(R) for R in per_seed]
    summary: dict[str, Any] = {name: summarize([figs[name] for figs in per_seed_figures]) for name in FIGURES}
    summary["notes"] = {}
    rate_note = _forgetting_rate_note(per_seed)
    if rate_note:
        summary["forgetting_rate"] = None
        summary["notes"]["forgetting_rate"] = rate_note
    return summary
