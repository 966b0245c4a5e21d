"""hybridcl.bootstrap: corpus BLEU from per-example statistics, and the paired bootstrap of two strategies."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sacrebleu.metrics import BLEU

from hybridcl import bootstrap
from hybridcl.metrics import bleu
from hybridcl.results import strategy_comparisons

TASKS = ("python", "javascript")
WORDS = "def return self x y ( ) : = + if else for in range print None".split()


def texts(n: int, seed: int, words: int = 20) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(0, words))) for _ in range(n)]


def example_stats(n: int, seed: int) -> list[list[int]]:
    """n examples' BLEU statistics of random code-like predictions against random references."""
    references = [text or "pass" for text in texts(n, 2 * seed)]
    return bleu.sentence_stats(texts(n, 2 * seed + 1), references)


def worse(stats: list[list[int]]) -> list[list[int]]:
    """The same examples with one match fewer of every order that has one: worse on every example with a match,
    the same on the others."""
    return [[*row[:2], *(max(m - 1, 0) for m in row[2:6]), *row[6:]] for row in stats]


def records(stats: dict[tuple[int, str], list[list[int]]], seeds: int = 1) -> list[list[dict]]:
    """Stage records (stages 0..2) whose evaluations carry `stats[(stage, task)]`, the same for every seed; the
    scores are their corpus BLEU, as the runner's are."""

    def evaluation(stage: int, task: str) -> dict:
        summed = np.sum(stats[(stage, task)], axis=0)
        return {"scores": {"bleu": float(bootstrap.corpus_bleu_from_stats(summed))}, "bleu_stats": stats[(stage, task)]}

    return [[{"stage": s, "eval": {t: evaluation(s, t) for t in TASKS}} for s in range(3)] for _ in range(seeds)]


@pytest.fixture(scope="module")
def base_stats() -> dict[tuple[int, str], list[list[int]]]:
    keys = [(stage, task) for stage in range(3) for task in TASKS]
    return {key: example_stats(200, seed) for seed, key in enumerate(keys)}


def test_the_full_sample_gives_sacrebleus_corpus_bleu_exactly():
    for seed in range(40):
        predictions, references = texts(30, seed), [text or "x" for text in texts(30, seed + 100)]
        summed = np.sum(bleu.sentence_stats(predictions, references), axis=0)
        assert float(bootstrap.corpus_bleu_from_stats(summed)) == bleu.corpus_bleu(predictions, references)
    # corner cases, against sacrebleu's own formula: no hypothesis token, no match, an order without n-grams,
    # orders without a match (smoothed), a short hypothesis (brevity penalty)
    corners = [[0, 5, 0, 0, 0, 0, 0, 0, 0, 0], [4, 4, 0, 0, 0, 0, 4, 3, 2, 1], [3, 3, 3, 2, 1, 0, 3, 2, 1, 0],
               [9, 9, 5, 0, 2, 0, 9, 8, 7, 6], [5, 12, 4, 3, 2, 1, 5, 4, 3, 2]]  # fmt: skip
    for row in corners:
        expected = BLEU.compute_bleu(row[2:6], row[6:], row[0], row[1], smooth_method="exp").score / 100
        assert bootstrap.corpus_bleu_from_stats(row).item() == expected, row


def test_a_resample_gives_sacrebleus_corpus_bleu_of_the_resampled_texts():
    predictions, references = texts(50, 7), [text or "x" for text in texts(50, 8)]
    stats = np.array(bleu.sentence_stats(predictions, references))
    weights = bootstrap.resample_weights({"python": 50}, resamples=5)["python"]
    assert weights.shape == (5, 50) and (weights.sum(axis=1) == 50).all()  # each resample draws n examples
    rescored = bootstrap.corpus_bleu_from_stats(weights @ stats)
    for r in range(5):
        drawn = [i for i in range(50) for _ in range(weights[r, i])]
        assert rescored[r] == bleu.corpus_bleu([predictions[i] for i in drawn], [references[i] for i in drawn])


def test_identical_strategies_give_an_interval_around_zero(base_stats):
    shuffled = {key: random.Random(1).sample(rows, len(rows)) for key, rows in base_stats.items()}
    block = strategy_comparisons(TASKS, {"a": records(base_stats), "b": records(base_stats), "c": records(shuffled)})
    same = block["a vs b"]["bleu"]["average"]
    assert same["difference"] == 0 and same["bootstrap_ci95"] == [0.0, 0.0]
    # c has the same examples' statistics in another order: the same corpus BLEU, other pairs
    exchanged = block["a vs c"]["bleu"]["average"]
    low, high = exchanged["bootstrap_ci95"]
    assert exchanged["difference"] == pytest.approx(0, abs=1e-12) and low < 0 < high
    assert exchanged["resamples"] == 1000 and exchanged["examples"] == {"python": 200, "javascript": 200}


def test_a_strategy_better_on_every_example_gets_an_interval_that_excludes_zero(base_stats):
    lower = {key: worse(rows) for key, rows in base_stats.items()}
    block = strategy_comparisons(TASKS, {"better": records(base_stats), "worse": records(lower)})
    for figure in ("average", "diagonal"):
        entry = block["better vs worse"]["bleu"][figure]
        low, high = entry["bootstrap_ci95"]
        assert 0 < low <= entry["difference"] <= high, figure


def test_the_resamples_are_seeded(base_stats):
    lower = {key: worse(rows) for key, rows in base_stats.items()}
    runs = [strategy_comparisons(TASKS, {"a": records(base_stats), "b": records(lower)}) for _ in range(2)]
    assert runs[0] == runs[1]
    sizes = {"python": 200}
    assert (bootstrap.resample_weights(sizes)["python"] == bootstrap.resample_weights(sizes)["python"]).all()
    assert (bootstrap.resample_weights(sizes)["python"] != bootstrap.resample_weights(sizes, seed=1)["python"]).any()


def test_several_seeds_average_the_figure_over_them_for_each_resample(base_stats):
    lower = {key: worse(rows) for key, rows in base_stats.items()}
    weights = bootstrap.resample_weights({task: 200 for task in TASKS}, resamples=50)
    two_seeds = records(base_stats, seeds=1) + records(lower, seeds=1)
    averaged = bootstrap.resampled_figures(two_seeds, TASKS, "bleu", weights)["average"]
    each = [bootstrap.resampled_figures([seed], TASKS, "bleu", weights)["average"] for seed in two_seeds]
    assert averaged == pytest.approx((each[0] + each[1]) / 2)


def test_the_across_seed_interval_needs_three_seeds():
    assert bootstrap.seed_difference([0.3, 0.31], [0.2, 0.2]) is None
    summary = bootstrap.seed_difference([0.3, 0.31, None, 0.32], [0.2, 0.2, 0.2, 0.2])  # a seed without a value
    assert summary["n"] == 3 and summary["mean"] == pytest.approx(0.11)
    low, high = summary["ci95"]
    assert low < 0.11 < high


def test_evaluations_without_statistics_get_no_bootstrap(base_stats):
    old = records(base_stats)
    del old[0][1]["eval"]["python"]["bleu_stats"]  # a stage written before the statistics existed
    block = strategy_comparisons(TASKS, {"a": old, "b": records(base_stats)})
    entry = block["a vs b"]["bleu"]["average"]
    assert entry["bootstrap_ci95"] is None and entry["resamples"] is None and entry["examples"] is None
    assert entry["difference"] == 0  # the scores are compared all the same
    assert bootstrap.example_counts({"a": records(base_stats)}, TASKS, "bleu") == {"python": 200, "javascript": 200}
    short = records(base_stats)
    short[0][2]["eval"]["javascript"]["bleu_stats"] = short[0][2]["eval"]["javascript"]["bleu_stats"][:199]
    assert bootstrap.example_counts({"a": short}, TASKS, "bleu") is None  # nothing to pair example by example
