"""95% intervals of the difference between two strategies: the paired bootstrap over evaluation examples,
and the interval across seeds.

**Paired bootstrap** (Koehn 2004). Every strategy of a run is scored on the same examples of each task.
A resample draws each task's examples with replacement, as many as there are; RESAMPLES resamples,
drawn from a generator seeded with SEED, task by task in training order. The same resamples serve every
strategy, stage and seed, so both sides of a comparison are always scored on the same examples. On
each resample every evaluation's corpus BLEU is recomputed from its examples' sufficient statistics
(stage.json `eval.<task>.bleu_stats`, see metrics/bleu.py), which gives each seed's accuracy matrix;
a figure (FIGURES) is computed on that matrix, and with several seeds averaged over them. The
interval is the 2.5th and 97.5th percentile (numpy's linear interpolation) of the resamples'
differences a − b. It measures how much the difference depends on which examples were drawn, not how
much it depends on training randomness: that is the seeds' interval.

**Across seeds**: the Student-t 95% CI (cl_figures.summarize) of the per-seed differences a − b,
seeds paired by the seed they were trained with; only with MIN_SEEDS_FOR_VERDICT seeds or more.

Evaluations without per-example statistics (stage records written before them) give no bootstrap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from hybridcl import cl_figures

RESAMPLES = 1000
SEED = 0
# Two seeds estimate the spread from a single difference (one degree of freedom): two that happen to agree
# give a narrow interval that means nothing. Three is the fewest seeds an across-seed interval uses.
MIN_SEEDS_FOR_VERDICT = 3
NGRAM_ORDER = 4

StageRecords = Sequence[Sequence[Mapping | None]]  # records[i][s]: seed i, stage s; None = not finished
Matrix = Sequence[Sequence[float]]


def diagonal(R: Matrix) -> float | None:
    """mean_j R[j][j], each task right after its own stage; None unless one stage per task (S == N)."""
    n = len(R[0])
    if len(R) != n + 1:
        return None
    own = [R[j][j - 1] for j in range(1, n + 1)]
    return None if any(x is None or math.isnan(x) for x in own) else sum(own) / n


FIGURES: dict[str, Callable[[Matrix], float | None]] = {
    "average": cl_figures.average,
    "forgetting": cl_figures.forgetting,
    "bwt": cl_figures.bwt,
    "fwt": cl_figures.fwt,
    "diagonal": diagonal,
}


# math's log and exp, element by element: numpy's own (SIMD) ones differ from them in the last bit
# at times, and the full sample must give sacrebleu's figure exactly. The sums stay vectorised.
_log = np.vectorize(math.log, otypes=[np.float64])
_exp = np.vectorize(math.exp, otypes=[np.float64])


def corpus_bleu_from_stats(stats: np.ndarray) -> np.ndarray:
    """Corpus BLEU (0-1) of summed statistics [..., hyp_len, ref_len, matches_1..4, totals_1..4], as
    sacrebleu.BLEU.compute_bleu gives it with corpus_bleu's settings, to the bit."""
    stats = np.asarray(stats, dtype=np.float64)
    flat = stats.reshape(-1, stats.shape[-1])
    sys_len, ref_len = flat[:, 0], flat[:, 1]
    matches, totals = flat[:, 2 : 2 + NGRAM_ORDER], flat[:, 2 + NGRAM_ORDER :]
    # sacrebleu gives 0 without a hypothesis token, without any match, or when an order has no n-gram
    scored = (sys_len > 0) & (matches > 0).any(axis=1) & (totals > 0).all(axis=1)
    bleu = np.zeros(len(flat))
    bleu[scored] = _bleu(sys_len[scored], ref_len[scored], matches[scored], totals[scored])
    return bleu.reshape(stats.shape[:-1]) / 100


def _bleu(sys_len: np.ndarray, ref_len: np.ndarray, matches: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """BLEU on 0-100 of rows that have hypothesis tokens, a match and every order's n-grams. Exp smoothing:
    an order without a match counts 100 / (2^k * total), k the number of such orders up to it."""
    brevity = np.ones_like(sys_len)
    short = sys_len < ref_len
    brevity[short] = _exp(1 - ref_len[short] / sys_len[short])
    halvings = np.cumsum(matches == 0, axis=1)
    precisions = np.where(matches > 0, 100.0 * matches / totals, 100.0 / (2.0**halvings * totals))
    return brevity * _exp(_log(precisions).sum(axis=1) / NGRAM_ORDER)


# metric -> (the key of its per-example statistics in a stage record's evaluation, the corpus figure of their sums)
StatsScorer = tuple[str, Callable[[np.ndarray], np.ndarray]]
STATISTICS: dict[str, StatsScorer] = {"bleu": ("bleu_stats", corpus_bleu_from_stats)}


def resample_weights(
    examples: Mapping[str, int], resamples: int = RESAMPLES, seed: int = SEED
) -> dict[str, np.ndarray]:
    """Per task, a (resamples, n) matrix: how often each of its n examples is drawn in each resample."""
    rng = np.random.default_rng(seed)
    weights = {}
    for task, n in examples.items():
        drawn = rng.integers(0, n, size=(resamples, n))
        rows = np.repeat(np.arange(resamples), n)
        weights[task] = np.bincount(rows * n + drawn.ravel(), minlength=resamples * n).reshape(resamples, n)
    return weights


def example_counts(records: Mapping[str, StageRecords], tasks: Sequence[str], metric: str) -> dict[str, int] | None:
    """Per task, how many examples its evaluations' statistics cover; None when a finished evaluation has
    none, or two of them disagree (nothing to pair)."""
    key = STATISTICS[metric][0]
    sizes: dict[str, set[int | None]] = {task: set() for task in tasks}
    for record in (r for seeds in records.values() for seed in seeds for r in seed if r is not None):
        for task in tasks:
            stats = record["eval"][task].get(key)
            sizes[task].add(None if stats is None else len(stats))
    if any(len(found) != 1 or None in found or 0 in found for found in sizes.values()):
        return None
    return {task: found.pop() for task, found in sizes.items()}


def resampled_matrices(
    seed_records: Sequence[Mapping | None], tasks: Sequence[str], metric: str, weights: Mapping[str, np.ndarray]
) -> np.ndarray:
    """One seed's accuracy matrix on every resample: (resamples, stages, tasks); NaN where not finished."""
    key, corpus_figure = STATISTICS[metric]
    resamples = next(iter(weights.values())).shape[0]
    cells = np.full((resamples, len(seed_records), len(tasks)), np.nan)
    for s, record in enumerate(seed_records):
        for j, task in enumerate(tasks):
            if record is not None:
                summed = weights[task] @ np.asarray(record["eval"][task][key], dtype=np.int64)
                cells[:, s, j] = corpus_figure(summed)
    return cells


def resampled_figures(
    records: StageRecords, tasks: Sequence[str], metric: str, weights: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray | None]:
    """Each figure on every resample, the mean over seeds; None where a seed lacks it."""
    per_seed = {name: [] for name in FIGURES}
    for seed_records in records:
        matrices = resampled_matrices(seed_records, tasks, metric, weights).tolist()
        for name, figure in FIGURES.items():
            values = [figure(R) for R in matrices]
            per_seed[name].append(None if None in values else values)
    return {name: None if None in seeds else np.mean(seeds, axis=0) for name, seeds in per_seed.items()}


def percentile_interval(differences: np.ndarray) -> list[float]:
    low, high = np.percentile(differences, [2.5, 97.5])
    return [float(low), float(high)]


def seed_difference(values_a: Sequence[float | None], values_b: Sequence[float | None]) -> dict | None:
    """The per-seed differences a − b summarised (mean, std, Student-t ci95, n), over the seeds where both
    have a value; None under MIN_SEEDS_FOR_VERDICT such seeds."""
    differences = [a - b for a, b in zip(values_a, values_b) if a is not None and b is not None]
    if len(differences) < MIN_SEEDS_FOR_VERDICT:
        return None
    return cl_figures.summarize(differences)
