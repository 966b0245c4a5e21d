"""The metric registry: one entry per accuracy metric, in the order the results and the report list them.

`score_predictions`, the results file (its accuracy matrices and continual-learning figures) and the
report iterate over `REGISTRY`. Adding a metric is one function, in its own module when it is more
than a line, plus one `Metric(...)` line here.

Each entry reads a `PredictionSet`, which computes the work several metrics share (CodeBLEU's figures,
tree-sitter parse flags, METEOR per example) once, times it, and keeps it for the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from hybridcl.metrics import bleu, codebleu, meteor, syntax


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


class PredictionSet:
    """One prediction set being scored, with the per-metric wall time (`seconds`) and notes."""

    def __init__(self, predictions: list[str], references: list[str], language: str, direction: str) -> None:
        self.predictions, self.references = predictions, references
        self.language, self.direction = language, direction
        self.n = len(predictions)
        self.seconds: dict[str, float] = {}
        self.notes: dict[str, str] = {}

    def timed(self, name: str, fn: Callable, *args):
        start = time.perf_counter()
        value = fn(*args)
        self.seconds[name] = round(time.perf_counter() - start, 4)
        return value

    @property
    def has_code_targets(self) -> bool:
        return self.direction == "generate"

    @cached_property
    def meteors(self) -> list[float]:
        return self.timed("meteor", meteor.sentence_meteors, self.predictions, self.references)

    @cached_property
    def exact(self) -> list[bool]:
        pairs = zip(self.predictions, self.references)
        return self.timed("exact_match", lambda: [normalize_whitespace(p) == normalize_whitespace(r) for p, r in pairs])

    @cached_property
    def parses(self) -> list[bool] | None:
        return self.timed("pass_rate", syntax.parse_flags, self.predictions, self.language)

    @cached_property
    def codebleu_components(self) -> dict[str, float] | None:
        """calc_codebleu's five figures, or None where CodeBLEU does not apply; caveats go to `notes`."""
        if not self.has_code_targets or codebleu.unavailable_reason(self.language):
            return None
        args = (self.predictions, self.references, self.language)
        components, no_dataflow = self.timed("codebleu", codebleu.corpus_codebleu, *args)
        caveats = []
        if no_dataflow:
            caveats.append("codebleu found no data-flows in any reference")
        if components["dataflow_match_score"] == 0:
            caveats.append(
                "dataflow_match_score is 0 and calc_codebleu counts it as 1 in the weighted sum "
                "(codebleu 0.7.0: `dataflow_match_score or 1`)"
            )
        if codebleu.hash_seed_note():
            caveats.append(codebleu.hash_seed_note())
        if caveats:
            self.notes["codebleu"] = "; ".join(caveats)
        return components


def _mean(values: list) -> float:
    return sum(values) / len(values)


def _corpus_bleu(s: PredictionSet) -> float:
    return s.timed("bleu", bleu.corpus_bleu, s.predictions, s.references)


def _sentence_bleus(s: PredictionSet) -> list[float]:
    return s.timed("bleu_per_example", bleu.sentence_bleus, s.predictions, s.references)


def _sentence_codebleus(s: PredictionSet) -> list[float]:
    return s.timed("codebleu_per_example", codebleu.sentence_codebleus, s.predictions, s.references, s.language)


def _pass_rate(s: PredictionSet) -> float | None:
    return None if s.parses is None else _mean(s.parses)


@dataclass(frozen=True)
class Metric:
    """An accuracy metric on 0-1, higher is better.

    `corpus` gives the figure of a whole prediction set (None: not defined here); `per_example` one
    value per prediction, stored in the predictions files under `per_example_key` (default: `name`).
    `costly_per_example` ones are computed only on request. A `code_only` metric is None for natural-
    language targets; `unavailable` names why it cannot be computed for a language (None: it can).
    """

    name: str
    label: str
    corpus: Callable[[PredictionSet], float | None]
    per_example: Callable[[PredictionSet], list | None] | None = None
    per_example_key: str | None = None
    costly_per_example: bool = False
    code_only: bool = False
    unavailable: Callable[[str], str | None] = lambda language: None

    @property
    def example_key(self) -> str:
        return self.per_example_key or self.name

    def unavailable_reason(self, s: PredictionSet) -> str | None:
        if self.code_only and not s.has_code_targets:
            return f"direction {s.direction!r} has natural-language targets; this metric is for code"
        return self.unavailable(s.language)


REGISTRY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("bleu", "BLEU", _corpus_bleu, _sentence_bleus),
        Metric("meteor", "METEOR", lambda s: _mean(s.meteors), lambda s: s.meteors),
        Metric(
            "codebleu",
            "CodeBLEU",
            lambda s: s.codebleu_components["codebleu"],
            _sentence_codebleus,
            costly_per_example=True,
            code_only=True,
            unavailable=codebleu.unavailable_reason,
        ),
        Metric(
            "ast_similarity",
            "AST similarity",
            lambda s: s.codebleu_components["syntax_match_score"],
            code_only=True,
            unavailable=codebleu.unavailable_reason,
        ),
        Metric(
            "pass_rate",
            "pass rate",
            _pass_rate,
            lambda s: s.parses,
            per_example_key="parses",
            code_only=True,
            unavailable=syntax.unavailable_reason,
        ),
        Metric("exact_match", "exact match", lambda s: _mean(s.exact), lambda s: s.exact),
    )
}
