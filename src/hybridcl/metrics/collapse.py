"""Output checks: statistics of one prediction set that say what its outputs look like to a reader.

A model that emits one string for every input, loops (``def _get_token_token_token...``,
``getgetget...``) until the generation limit, or writes Python for a JavaScript task can still score:
``______`` parses as a Python identifier; BLEU of a loop is a small positive number. These statistics
let the report flag such an evaluation instead of reading its metrics as skill. They are not accuracy
metrics: they never enter the accuracy matrices or the continual-learning figures.

- ``distinct_share``: distinct predictions / predictions, on METEOR's tokens (words/identifiers and
  single punctuation characters, see meteor.py), so whitespace is formatting: 1 when every prediction
  differs, 1/n when all n are one string.
- ``looping_share``: share of predictions that loop: some block of 1 to LOOP_MAX_BLOCK of the model's
  own subword tokens (the generated ids) occurs LOOP_MIN_REPEATS or more times back to back.
  Subwords, not words: ``_token_token_token_token`` and ``getgetgetget`` are one word each, but
  4 repeats of the subword blocks ``_ token`` and ``get``; ``def f(): return x\\n`` x 4 is a 6-token
  block repeated. Healthy code does not trip it (``self.x = x`` then ``self.y = y``: the names differ;
  ``)))`` is one subword): of the corpus's python and javascript functions of at most 300
  characters, 0.03% and 0.1% do (``[1, 0, 0, 0, 0, 1]``, ``'0xFFFFFFFFFFFFFFFF'``).
- ``truncated_share``: share of predictions that ran to ``eval.max_new_tokens`` without an EOS (cut
  off by the limit, not ended by the model).
- ``length_ratio``: prediction tokens / reference tokens (METEOR's), summed over the set (None
  without reference tokens). Shown with the others; no flag, since a short or long output alone is
  no fault.
- ``wrong_language_share``: share of predictions that do not parse as the task's language but parse
  as another language with a grammar here (python, javascript, java, c_sharp; syntax.py), e.g.
  Python ``def``\\ s for a JavaScript task. A prediction that parses as both counts as its own
  language (short snippets such as ``foo(a, b);`` do, and many Java methods are valid C#: syntax.py
  says how many). None for natural-language targets, or without a grammar for the task or for another
  language.
  The share that parses as the task's language is the pass rate.

The subword statistics need the generated ids (evaluate.py passes them); without them (a prediction
set scored from text alone) they are None, never a guess.

Flags of one evaluation, by these thresholds:
- collapsed: distinct_share < MIN_DISTINCT_SHARE or looping_share > MAX_LOOPING_SHARE;
- truncated: truncated_share > MAX_TRUNCATED_SHARE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hybridcl.metrics.meteor import tokenize

OUTPUT_STATS = ("distinct_share", "looping_share", "truncated_share", "length_ratio", "wrong_language_share")

LOOP_MIN_REPEATS = 4  # three back-to-back copies occur in real code (`"""`, `* t * t * t`); four almost never
LOOP_MAX_BLOCK = 32  # 4 x 32 = 128 tokens, the demo's generation limit
# Healthy generation gives a distinct output for nearly every input (references are distinct after
# deduplication); fewer than half distinct means most inputs got a copy of another output.
MIN_DISTINCT_SHARE = 0.5
# At most 1 in 1,000 real functions loops; when more than a quarter of the outputs loop, the metrics
# score loops as much as code.
MAX_LOOPING_SHARE = 0.25
# References fit the generation budget (data.max_code_chars); when more than one output in ten is cut
# off there, the metrics score cut-off text.
MAX_TRUNCATED_SHARE = 0.1


@dataclass(frozen=True)
class Generation:
    """What the model generated for one input: its subword ids before the first EOS (no decoder start
    token), and whether it produced that EOS (False: it ran to the generation limit)."""

    token_ids: tuple[int, ...]
    ended: bool


def distinct_share(predictions: Sequence[str]) -> float:
    return len({tuple(tokenize(p)) for p in predictions}) / len(predictions)


def loops(tokens: Sequence) -> bool:
    """Whether a block of 1..LOOP_MAX_BLOCK tokens occurs LOOP_MIN_REPEATS times back to back."""
    for size in range(1, LOOP_MAX_BLOCK + 1):
        # k back-to-back copies of a block of `size` tokens: (k - 1) * size tokens in a row, each equal
        # to the token `size` before it
        needed, streak = (LOOP_MIN_REPEATS - 1) * size, 0
        for i in range(size, len(tokens)):
            streak = streak + 1 if tokens[i] == tokens[i - size] else 0
            if streak >= needed:
                return True
    return False


def length_ratio(predictions: Sequence[str], references: Sequence[str]) -> float | None:
    reference_tokens = sum(len(tokenize(r)) for r in references)
    return sum(len(tokenize(p)) for p in predictions) / reference_tokens if reference_tokens else None


def _share(flags: Sequence[bool] | None) -> float | None:
    return None if flags is None else sum(flags) / len(flags)


def output_checks(
    predictions: Sequence[str],
    references: Sequence[str],
    generations: Sequence[Generation] | None = None,
    wrong_language: Sequence[bool] | None = None,
) -> tuple[dict[str, float | None], dict[str, list[bool] | None]]:
    """The OUTPUT_STATS of one non-empty prediction set, and the per-prediction flags behind its shares
    ({"loops", "truncated", "wrong_language"}, each None where unknown). `generations`: the model's
    output per prediction; `wrong_language`: syntax.wrong_language_flags of the predictions."""
    if generations is not None and len(generations) != len(predictions):
        raise ValueError(f"{len(generations)} generations for {len(predictions)} predictions: they must pair up")
    looping = None if generations is None else [loops(g.token_ids) for g in generations]
    truncated = None if generations is None else [not g.ended for g in generations]
    wrong = None if wrong_language is None else list(wrong_language)
    stats = {
        "distinct_share": distinct_share(predictions),
        "looping_share": _share(looping),
        "truncated_share": _share(truncated),
        "length_ratio": length_ratio(predictions, references),
        "wrong_language_share": _share(wrong),
    }
    return stats, {"loops": looping, "truncated": truncated, "wrong_language": wrong}


def _beyond(stats: Mapping[str, float | None], name: str, limit: float, above: bool) -> bool:
    value = stats.get(name)
    return value is not None and (value > limit if above else value < limit)


def is_collapsed(stats: Mapping[str, float | None]) -> bool:
    """The collapse rule on one evaluation's statistics (a statistic that is None or absent does not count)."""
    return _beyond(stats, "distinct_share", MIN_DISTINCT_SHARE, above=False) or _beyond(
        stats, "looping_share", MAX_LOOPING_SHARE, above=True
    )


def is_truncated(stats: Mapping[str, float | None]) -> bool:
    """The truncation rule on one evaluation's statistics (None or absent does not count)."""
    return _beyond(stats, "truncated_share", MAX_TRUNCATED_SHARE, above=True)
