"""Collapsed outputs: statistics of one prediction set that say whether the model emits text at all.

A model that emits one string for every input (``def _def _def ...``, ``______``) can still score:
``______`` parses as a Python identifier, so its pass rate is high; BLEU of a constant output is a
small positive number. These statistics, computed from the predictions and references alone, let the
report flag such an evaluation instead of reading its metrics as skill. They are not accuracy
metrics: they never enter the accuracy matrices or the continual-learning figures.

Tokens are METEOR's (words/identifiers and single punctuation characters, see meteor.py), so
whitespace is formatting, not content.

- ``distinct_share``: distinct predictions / predictions (two predictions are the same when their
  tokens are); 1 when every prediction differs, 1/n when all n are one string.
- ``repetition_rate``: mean over predictions of the share of a prediction's tokens that end an
  n-gram (n = REPEAT_NGRAM) already seen earlier in the same prediction; 0 for a prediction
  shorter than n tokens. In ``a b c a b c a b c`` tokens 6 to 9 each end a trigram seen before: 4/9.
- ``length_ratio``: prediction tokens / reference tokens, summed over the set (None without
  reference tokens). Shown with the others; not part of the collapse rule, since a short or long
  output alone is not a collapse.

Collapsed: distinct_share < MIN_DISTINCT_SHARE or repetition_rate > MAX_REPETITION_RATE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hybridcl.metrics.meteor import tokenize

OUTPUT_STATS = ("distinct_share", "repetition_rate", "length_ratio")

REPEAT_NGRAM = 3  # repeated bigrams are ordinary code (`) ;`, `self .`); mostly repeated trigrams are a loop
# Healthy generation gives a distinct output for nearly every input (references are distinct after
# deduplication); fewer than half distinct means most inputs got a copy of another output.
MIN_DISTINCT_SHARE = 0.5
# More than half of the tokens re-emitting an earlier trigram is a loop, not code or prose.
MAX_REPETITION_RATE = 0.5


def distinct_share(predictions: Sequence[str]) -> float:
    return len({tuple(tokenize(p)) for p in predictions}) / len(predictions)


def _repeated_share(tokens: list[str]) -> float:
    seen: set[tuple[str, ...]] = set()
    repeated = 0
    for end in range(REPEAT_NGRAM, len(tokens) + 1):
        gram = tuple(tokens[end - REPEAT_NGRAM : end])
        repeated += gram in seen
        seen.add(gram)
    return repeated / len(tokens) if tokens else 0.0


def repetition_rate(predictions: Sequence[str]) -> float:
    return sum(_repeated_share(tokenize(p)) for p in predictions) / len(predictions)


def length_ratio(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    reference_tokens = sum(len(tokenize(r)) for r in references)
    return sum(len(tokenize(p)) for p in predictions) / reference_tokens if reference_tokens else None


def output_stats(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float | None]:
    """{"distinct_share", "repetition_rate", "length_ratio"} of one non-empty prediction set."""
    return {
        "distinct_share": distinct_share(predictions),
        "repetition_rate": repetition_rate(predictions),
        "length_ratio": length_ratio(predictions, references),
    }


def is_collapsed(stats: Mapping[str, float | None]) -> bool:
    """The collapse rule on one evaluation's statistics (a statistic that is None does not count)."""
    distinct, repetition = stats.get("distinct_share"), stats.get("repetition_rate")
    return (distinct is not None and distinct < MIN_DISTINCT_SHARE) or (
        repetition is not None and repetition > MAX_REPETITION_RATE
    )
