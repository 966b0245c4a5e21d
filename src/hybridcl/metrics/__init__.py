"""Evaluation metrics (docs/design.md section 3): each one equals its reference implementation.

The accuracy metrics are the entries of ``registry.REGISTRY`` (name, label, corpus and per-example
functions, which targets it is for); ``METRICS`` is their names in order. Adding a metric is one
entry there. ``score_predictions(predictions, references, target_language)`` scores one prediction
set once per metric. ``target_language`` is the language of the references: one of TARGET_LANGUAGES
(python, javascript, java, c_sharp, go, php, ruby: the languages syntax.py and codebleu know), or
None for natural-language targets (docstrings, summaries). It returns::

    {
      "n": 2000, "language": "java",      # the target language; None for natural-language targets
      "corpus": {                         # the METRICS, which go into the accuracy matrices (0-1)
        "bleu":           sacrebleu.corpus_bleu(preds, [refs]).score / 100,
        "meteor":         mean of nltk meteor_score([tok(ref)], tok(pred))        (see meteor.py),
        "codebleu":       calc_codebleu(refs, preds, lang)["codebleu"]            | None,
        "ast_similarity": calc_codebleu(...)["syntax_match_score"]                | None,
        "pass_rate":      share of predictions tree-sitter parses without error   | None  (syntax.py),
        "exact_match":    share equal to the reference after " ".join(s.split()),
        "codexglue_bleu": CodeXGLUE's corpus BLEU-4 (add-one smoothing, whitespace tokens) | None,
        "smooth_bleu":    CodeXGLUE's smoothed sentence BLEU-4, mean (summarisation)      | None,
        "codebleu_ngram", "codebleu_weighted_ngram", "codebleu_dataflow": CodeBLEU's parts | None,
        # then the OUTPUT_STATS (collapse.py), which describe the outputs and are not accuracy
        # metrics: they never enter the accuracy matrices or the continual-learning figures
        "distinct_share": distinct predictions / predictions,
        "looping_share":  share of predictions with a subword block repeated 4+ times in a row | None,
        "truncated_share": share of predictions cut off at eval.max_new_tokens    | None,
        "length_ratio":   prediction tokens / reference tokens                    | None,
        "wrong_language_share": share parsing as another language, not their own | None,
      },
      "codebleu_components": calc_codebleu's five figures | None,
      "reference_pass_rate": share of references that parse (the pass rate's ceiling) | None,
      "per_example": {"bleu": [...], "meteor": [...], "codebleu": [...] | None,
                      "parses": [bool...] | None, "exact_match": [bool...],
                      "loops", "truncated", "wrong_language": [bool...] | None},  # the output checks
      "bleu_stats": [[hyp_len, ref_len, matches_1..4, totals_1..4], ...],  # per example (bleu.py)
      "notes": {metric: why it is None, or a caveat about its value},
      "seconds": {metric: wall time spent on it},
    }

None means "not defined here", never 0: the PARSED_METRICS (CodeBLEU and its parts, pass rate) are
None for natural-language targets and for languages whose tree-sitter grammar is not installed (this
project pins python, javascript, java and c_sharp; go, php and ruby get None); codexglue_bleu is for
code targets, smooth_bleu for natural-language ones.
Per-example CodeBLEU is off by default (``per_example_codebleu=True`` costs as much again as the
corpus call); per-example BLEU is sacrebleu's sentence BLEU.

The runner calls :func:`require_wordnet` before training, so a missing WordNet stops a run at
start-up instead of after hours of training.

An evaluation whose outputs collapsed (:func:`is_collapsed`: few distinct predictions, or many
looping) or were cut off (:func:`is_truncated`) scores those outputs, not skill; the report flags it.
The subword statistics (looping, truncated) need ``generations``, the model's generated ids per
prediction (evaluate.py passes them); without them they are None.
"""

from __future__ import annotations

from hybridcl.metrics import bleu, syntax
from hybridcl.metrics.collapse import OUTPUT_STATS, Generation, is_collapsed, is_truncated, output_checks
from hybridcl.metrics.meteor import WordNetMissingError, require_wordnet
from hybridcl.metrics.registry import REGISTRY, Metric, PredictionSet, normalize_whitespace

METRICS = tuple(REGISTRY)
# The code languages a prediction set may target; None (not listed) is natural-language targets.
TARGET_LANGUAGES = tuple(syntax.GRAMMARS)
# The metrics that parse code: None for natural-language targets and for languages without a grammar.
PARSED_METRICS = tuple(name for name, metric in REGISTRY.items() if metric.unavailable is not None)

__all__ = [
    "METRICS",
    "OUTPUT_STATS",
    "Generation",
    "PARSED_METRICS",
    "REGISTRY",
    "TARGET_LANGUAGES",
    "Metric",
    "WordNetMissingError",
    "is_collapsed",
    "is_truncated",
    "normalize_whitespace",
    "require_wordnet",
    "score_predictions",
]


def _check_inputs(predictions: list[str], references: list[str], target_language: str | None) -> None:
    if target_language is not None and target_language not in TARGET_LANGUAGES:
        raise ValueError(
            f"target language {target_language!r} is not one of {list(TARGET_LANGUAGES)} "
            "(or None for natural-language targets)"
        )
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
    target_language: str | None,
    *,
    per_example_codebleu: bool = False,
    generations: list[Generation] | None = None,
) -> dict:
    """Score one prediction set against its references; see the module docstring for the result."""
    predictions, references = list(predictions), list(references)
    _check_inputs(predictions, references, target_language)
    s = PredictionSet(predictions, references, target_language)
    corpus, per_example = {}, {}
    for metric in REGISTRY.values():
        reason = metric.unavailable_reason(s)
        if reason:
            s.notes[metric.name] = reason
        corpus[metric.name] = None if reason else metric.corpus(s)
        if metric.per_example is not None:
            wanted = not reason and (per_example_codebleu or not metric.costly_per_example)
            per_example[metric.example_key] = metric.per_example(s) if wanted else None
    wrong_language = reference_pass_rate = None
    if corpus["pass_rate"] is not None:  # code targets with a grammar
        wrong_language = s.timed("wrong_language", syntax.wrong_language_flags, predictions, target_language, s.parses)
        reference_pass_rate = s.timed("reference_pass_rate", syntax.pass_rate, references, target_language)
    stats, flags = s.timed("output_stats", output_checks, predictions, references, generations, wrong_language)
    corpus.update(stats)
    per_example.update(flags)
    return {
        "n": s.n,
        "language": target_language,
        "corpus": corpus,
        "codebleu_components": s.codebleu_components,
        "reference_pass_rate": reference_pass_rate,
        "per_example": per_example,
        "bleu_stats": s.timed("bleu_stats", bleu.sentence_stats, predictions, references),
        "notes": s.notes,
        "seconds": s.seconds,
    }
