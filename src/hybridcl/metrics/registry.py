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

from hybridcl.metrics import bleu, codebleu, codexglue, meteor, syntax


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


class PredictionSet:
    """One prediction set being scored, with the per-metric wall time (`seconds`) and notes."""

    def __init__(self, predictions: list[str], references: list[str], target_language: str | None) -> None:
        self.predictions, self.references = predictions, references
        self.target_language = target_language  # None: natural-language targets
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
        return self.target_language is not None

    @cached_property
    def meteors(self) -> list[float]:
        return self.timed("meteor", meteor.sentence_meteors, self.predictions, self.references)

    @cached_property
    def exact(self) -> list[bool]:
        pairs = zip(self.predictions, self.references)
        return self.timed("exact_match", lambda: [normalize_whitespace(p) == normalize_whitespace(r) for p, r in pairs])

    @cached_property
    def parses(self) -> list[bool] | None:
        return self.timed("pass_rate", syntax.parse_flags, self.predictions, self.target_language)

    @cached_property
    def codebleu_components(self) -> dict[str, float] | None:
        """calc_codebleu's five figures, or None where CodeBLEU does not apply; caveats go to `notes`."""
        if not self.has_code_targets or codebleu.unavailable_reason(self.target_language):
            return None
        args = (self.predictions, self.references, self.target_language)
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
    predictions, references, language = s.predictions, s.references, s.target_language
    return s.timed("codebleu_per_example", codebleu.sentence_codebleus, predictions, references, language)


def _pass_rate(s: PredictionSet) -> float | None:
    return None if s.parses is None else _mean(s.parses)


TARGETS = ("any", "code", "text")
PER_CENT = "papers print it x 100"


@dataclass(frozen=True)
class Metric:
    """An accuracy metric on 0-1, higher is better.

    `corpus` gives the figure of a whole prediction set (None: not defined here); `per_example` one
    value per prediction, stored in the predictions files under `per_example_key` (default: `name`).
    `costly_per_example` ones are computed only on request. `targets` "code" / "text": the metric is None
    for the other kind of target (natural-language / code). `unavailable`, for metrics that parse code:
    the target language -> why it cannot be parsed (None: it can). `headline` metrics fill the report's sentences
    and tables; `beside`: the metric this one is shown next to (a part of it, or another definition of it).
    `unit`: what the 0-1 figure is, for a reader who knows the published scale.
    """

    name: str
    label: str
    corpus: Callable[[PredictionSet], float | None]
    per_example: Callable[[PredictionSet], list | None] | None = None
    per_example_key: str | None = None
    costly_per_example: bool = False
    targets: str = "any"
    unavailable: Callable[[str], str | None] | None = None
    headline: bool = True
    beside: str | None = None
    unit: str = "0-1"

    @property
    def example_key(self) -> str:
        return self.per_example_key or self.name

    def unavailable_reason(self, s: PredictionSet) -> str | None:
        if self.targets == "code" and not s.has_code_targets:
            return "natural-language targets; this metric is for code"
        if self.targets == "text" and s.has_code_targets:
            return "code targets; this metric is for natural-language summaries"
        return None if self.unavailable is None else self.unavailable(s.target_language)


def _codebleu_part(key: str) -> Callable[[PredictionSet], float]:
    return lambda s: s.codebleu_components[key]


def _codebleu_component(
    name: str, label: str, key: str, headline: bool = False, unit: str = "codebleu's 0-1 part"
) -> Metric:
    part = _codebleu_part(key)
    return Metric(
        name,
        label,
        part,
        targets="code",
        unavailable=codebleu.unavailable_reason,
        headline=headline,
        beside="codebleu",
        unit=unit,
    )


def _codexglue_bleu(s: PredictionSet) -> float:
    return s.timed("codexglue_bleu", codexglue.corpus_bleu_smoothed, s.predictions, s.references)


def _smooth_bleus(s: PredictionSet) -> list[float]:
    return s.timed("smooth_bleu", codexglue.smooth_bleus, s.predictions, s.references)


REGISTRY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("bleu", "BLEU", _corpus_bleu, _sentence_bleus, unit=f"sacreBLEU's corpus BLEU-4 / 100 ({PER_CENT})"),
        Metric(
            "meteor", "METEOR", lambda s: _mean(s.meteors), lambda s: s.meteors, unit="mean of per-prediction METEOR"
        ),
        Metric(
            "codebleu",
            "CodeBLEU",
            _codebleu_part("codebleu"),
            _sentence_codebleus,
            costly_per_example=True,
            targets="code",
            unavailable=codebleu.unavailable_reason,
            unit="the mean of codebleu's four 0-1 parts (a dataflow part of 0 counted as 1)",
        ),
        # CodeBLEU's syntax part, a headline metric of its own (the seed asks for AST similarity)
        _codebleu_component(
            "ast_similarity",
            "AST similarity",
            "syntax_match_score",
            headline=True,
            unit="share of the references' syntax subtrees found in the predictions",
        ),
        Metric(
            "pass_rate",
            "pass rate",
            _pass_rate,
            lambda s: s.parses,
            per_example_key="parses",
            targets="code",
            unavailable=syntax.unavailable_reason,
            unit="share of the predictions that parse",
        ),
        Metric(
            "exact_match",
            "exact match",
            lambda s: _mean(s.exact),
            lambda s: s.exact,
            unit="share of the predictions equal to their reference, whitespace aside",
        ),
        Metric(
            "codexglue_bleu",
            "BLEU (CodeXGLUE)",
            _codexglue_bleu,
            targets="code",
            headline=False,
            beside="bleu",
            unit=f"add-one smoothed corpus BLEU-4 on 0-1 ({PER_CENT})",
        ),
        Metric(
            "smooth_bleu",
            "smoothed BLEU (CodeXGLUE)",
            lambda s: _mean(_smooth_bleus(s)),
            targets="text",
            headline=False,
            beside="bleu",
            unit=f"mean smoothed sentence BLEU-4 on 0-1 ({PER_CENT})",
        ),
        _codebleu_component("codebleu_ngram", "CodeBLEU n-gram", "ngram_match_score"),
        _codebleu_component("codebleu_weighted_ngram", "CodeBLEU weighted n-gram", "weighted_ngram_match_score"),
        _codebleu_component("codebleu_dataflow", "CodeBLEU dataflow", "dataflow_match_score"),
    )
}
