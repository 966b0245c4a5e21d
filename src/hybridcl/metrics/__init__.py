"""Evaluation metrics (docs/design.md section 3): each one equals its reference implementation.

``score_predictions(predictions, references, language, direction)`` scores one prediction set once
per metric and returns::

    {
      "n": 2000, "language": "python", "direction": "generate",
      "corpus": {                         # the six METRICS, which go into the accuracy matrices (0-1)
        "bleu":           sacrebleu.corpus_bleu(preds, [refs]).score / 100,
        "meteor":         mean of nltk meteor_score([tok(ref)], tok(pred))        (see meteor.py),
        "codebleu":       calc_codebleu(refs, preds, lang)["codebleu"]            | None,
        "ast_similarity": calc_codebleu(...)["syntax_match_score"]                | None,
        "pass_rate":      share of predictions tree-sitter parses without error   | None  (syntax.py),
        "exact_match":    share equal to the reference after " ".join(s.split()),
        # then the three OUTPUT_STATS (collapse.py), which describe the outputs and are not accuracy
        # metrics: they never enter the accuracy matrices or the continual-learning figures
        "distinct_share": distinct predictions / predictions,
        "repetition_rate": mean share of a prediction's tokens repeating one of its earlier trigrams,
        "length_ratio":   prediction tokens / reference tokens                    | None,
      },
      "codebleu_components": calc_codebleu's five figures | None,
      "reference_pass_rate": share of references that parse (the pass rate's ceiling) | None,
      "per_example": {"bleu": [...], "meteor": [...], "exact_match": [bool...],
                      "parses": [bool...] | None, "codebleu": [...] | None},
      "notes": {metric: why it is None, or a caveat about its value},
      "seconds": {metric: wall time spent on it},
    }

None means "not defined here", never 0: code-only metrics (codebleu, ast_similarity, pass_rate) are
None for the ``summarize`` direction (natural-language targets) and for languages whose tree-sitter
grammar is not installed (this project pins python and javascript; java, go, php, ruby get None).
Per-example CodeBLEU is off by default (``per_example_codebleu=True`` costs as much again as the
corpus call); per-example BLEU is sacrebleu's sentence BLEU.

The runner calls :func:`require_wordnet` before training, so a missing WordNet stops a run at
start-up instead of after hours of training.

An evaluation whose outputs collapsed (:func:`is_collapsed`: few distinct predictions or heavy
repetition) scores what the collapse scores, not skill; the report flags it.
"""

from __future__ import annotations

import time

from hybridcl.config import DIRECTIONS, LANGUAGES
from hybridcl.metrics import bleu, codebleu, meteor, syntax
from hybridcl.metrics.collapse import OUTPUT_STATS, is_collapsed, output_stats
from hybridcl.metrics.meteor import WordNetMissingError, require_wordnet

METRICS = ("bleu", "meteor", "codebleu", "ast_similarity", "pass_rate", "exact_match")
CODE_ONLY_METRICS = ("codebleu", "ast_similarity", "pass_rate")

__all__ = [
    "CODE_ONLY_METRICS",
    "METRICS",
    "OUTPUT_STATS",
    "WordNetMissingError",
    "exact_matches",
    "is_collapsed",
    "normalize_whitespace",
    "require_wordnet",
    "score_predictions",
]


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


def exact_matches(predictions: list[str], references: list[str]) -> list[bool]:
    return [normalize_whitespace(p) == normalize_whitespace(r) for p, r in zip(predictions, references)]


def _check_inputs(predictions: list[str], references: list[str], language: str, direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not one of {list(DIRECTIONS)}")
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r} is not a CodeSearchNet language {list(LANGUAGES)}")
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references: they must pair up")
    if not predictions:
        raise ValueError("no predictions to score: corpus metrics of an empty set are undefined")
    for name, texts in (("prediction", predictions), ("reference", references)):
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"{name} {i} is {type(text).__name__}, not str")


def score_predictions(
    predictions: list[str],
    references: list[str],
    language: str,
    direction: str,
    *,
    per_example_codebleu: bool = False,
) -> dict:
    """Score one prediction set against its references; see the module docstring for the result."""
    predictions, references = list(predictions), list(references)
    _check_inputs(predictions, references, language, direction)
    n = len(predictions)
    seconds: dict[str, float] = {}
    notes: dict[str, str] = {}

    def timed(name, fn, *args):
        start = time.perf_counter()
        value = fn(*args)
        seconds[name] = round(time.perf_counter() - start, 4)
        return value

    corpus_bleu = timed("bleu", bleu.corpus_bleu, predictions, references)
    sentence_bleu = timed("bleu_per_example", bleu.sentence_bleus, predictions, references)
    meteors = timed("meteor", meteor.sentence_meteors, predictions, references)
    exact = timed("exact_match", exact_matches, predictions, references)
    outputs = timed("output_stats", output_stats, predictions, references)

    codebleu_components = None
    per_codebleu = None
    parses = None
    pass_rate = reference_pass_rate = None
    if direction != "generate":
        why = f"direction {direction!r} has natural-language targets; this metric is for code"
        for name in CODE_ONLY_METRICS:
            notes[name] = why
    else:
        reason = codebleu.unavailable_reason(language)
        if reason is None:
            codebleu_components, no_dataflow = timed(
                "codebleu", codebleu.corpus_codebleu, predictions, references, language
            )
            caveats = []
            if no_dataflow:
                caveats.append("codebleu found no data-flows in any reference")
            if codebleu_components["dataflow_match_score"] == 0:
                caveats.append(
                    "dataflow_match_score is 0 and calc_codebleu counts it as 1 in the weighted sum "
                    "(codebleu 0.7.0: `dataflow_match_score or 1`)"
                )
            if codebleu.hash_seed_note():
                caveats.append(codebleu.hash_seed_note())
            if caveats:
                notes["codebleu"] = "; ".join(caveats)
            if per_example_codebleu:
                per_codebleu = timed(
                    "codebleu_per_example", codebleu.sentence_codebleus, predictions, references, language
                )
        else:
            notes["codebleu"] = notes["ast_similarity"] = reason
        parses = timed("pass_rate", syntax.parse_flags, predictions, language)
        if parses is None:
            notes["pass_rate"] = syntax.unavailable_reason(language)
        else:
            pass_rate = sum(parses) / n
            reference_pass_rate = timed("reference_pass_rate", syntax.pass_rate, references, language)

    return {
        "n": n,
        "language": language,
        "direction": direction,
        "corpus": {
            "bleu": corpus_bleu,
            "meteor": sum(meteors) / n,
            "codebleu": None if codebleu_components is None else codebleu_components["codebleu"],
            "ast_similarity": None if codebleu_components is None else codebleu_components["syntax_match_score"],
            "pass_rate": pass_rate,
            "exact_match": sum(exact) / n,
            **outputs,
        },
        "codebleu_components": codebleu_components,
        "reference_pass_rate": reference_pass_rate,
        "per_example": {
            "bleu": sentence_bleu,
            "meteor": meteors,
            "exact_match": exact,
            "parses": parses,
            "codebleu": per_codebleu,
        },
        "notes": notes,
        "seconds": seconds,
    }
