"""CodeBLEU and AST similarity, straight from ``codebleu.calc_codebleu`` (codebleu 0.7.0).

Corpus figures are exactly ``calc_codebleu(references, predictions, lang, weights=(0.25,)*4)``:
``codebleu`` and its four components; AST similarity is its ``syntax_match_score`` (the share of
reference AST subtrees, non-leaf, compared as s-expressions, found in the hypothesis).

When there is no number (None, with the reason in the result's notes):
- natural-language targets (target language None): CodeBLEU is about code;
- languages without a loadable tree-sitter grammar: codebleu supports every target language
  (``c_sharp`` is its name for C#) but needs ``tree_sitter_<lang>``; this project pins python,
  javascript, java and c_sharp, so go, php and ruby get None.

What codebleu 0.7.0 does that a reader of the numbers should know (values are kept identical to the
library; nothing here "fixes" them):
- ``codebleu = ... + theta * (dataflow_match_score or 1)``: a dataflow score of 0 -- no reference
  data-flows at all, but ALSO references with data-flows of which the hypotheses match none -- is
  counted as 1 in the weighted sum. So an empty prediction against a real function scores
  CodeBLEU 0.25, not 0, and the components dict shows ``dataflow_match_score`` 0.
- With no reference data-flows in the whole corpus it logs a WARNING through the *root* logger
  (``logging.warning``), which also calls ``logging.basicConfig()`` and so installs a stderr handler
  on the root logger as a side effect. :func:`_quiet_codebleu` drops that one message (it is counted
  and reported in the result instead) and keeps ``basicConfig`` from running.
- ``syntax_match_score`` checks membership (``in`` a list), not multiset counts: a subtree that
  occurs 5 times in the reference is fully matched by one occurrence in the hypothesis. It divides by
  the number of reference subtrees, which is at least 1 per example (the root), so only an empty
  corpus divides by zero; callers never pass one.
- ``dataflow_match_score`` (so ``codebleu``) depends on the process's string-hash seed: codebleu
  builds variable lists with ``list(set(...))`` and compares the normalised data-flows as ordered
  lists. On the offline demo's 18 prediction sets it moved by up to 2.7e-3 across PYTHONHASHSEED=0..19
  (JavaScript sets only; python sets did not move; benchmarks/codebleu_hash_seed.py), and the other
  three components do not move. Within one process it is stable, and equal to calc_codebleu's own
  call; for run-to-run identical figures run with ``PYTHONHASHSEED`` set (``hash_seed_note``
  says when it is not).
- Inputs are ``.strip()``-ed and n-grams use ``str.split()``; unparsable code still gets a
  (partial) syntax/dataflow score from tree-sitter's error-recovering parse.
- ``calc_codebleu`` raises ImportError for a supported language whose grammar is missing (that is
  how we detect it) and ZeroDivisionError for an empty corpus.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator

from codebleu import AVAILABLE_LANGS, calc_codebleu
from codebleu.utils import get_tree_sitter_language

WEIGHTS = (0.25, 0.25, 0.25, 0.25)
COMPONENTS = (
    "codebleu",
    "ngram_match_score",
    "weighted_ngram_match_score",
    "syntax_match_score",
    "dataflow_match_score",
)
_NO_DATAFLOW_MARK = "no reference data-flows"


@functools.lru_cache(maxsize=None)
def unavailable_reason(language: str) -> str | None:
    """None when CodeBLEU can score ``language``, else why not."""
    if language not in AVAILABLE_LANGS:
        return f"codebleu does not support {language!r} (supports {AVAILABLE_LANGS})"
    try:
        get_tree_sitter_language(language)
    except ImportError:
        package = "tree-sitter-" + language.replace("_", "-")
        return (
            f"the tree-sitter grammar for {language} ({package}) is not installed; "
            "this project pins grammars for python, javascript, java and c_sharp only"
        )
    except Exception as err:  # e.g. a grammar built for a different tree-sitter ABI
        return f"the tree-sitter grammar for {language} does not load with this tree-sitter: {err}"
    return None


def hash_seed_note() -> str | None:
    """A caveat for the results when this process's string hashing is randomised, else None."""
    if os.environ.get("PYTHONHASHSEED", "random") != "random":
        return None
    return (
        "dataflow_match_score (and so codebleu) can differ slightly between processes: codebleu 0.7.0 "
        "iterates over sets of strings; set PYTHONHASHSEED (e.g. 0) for run-to-run identical values"
    )


class _DropNoDataflowWarning(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if _NO_DATAFLOW_MARK in record.getMessage():
            self.dropped += 1
            return False
        return True


@contextlib.contextmanager
def _quiet_codebleu() -> Iterator[_DropNoDataflowWarning]:
    """Drop codebleu's root-logger 'no reference data-flows' warning, and stop ``logging.warning``
    from configuring the root logger as a side effect (it only does so when the root has no handler)."""
    root = logging.getLogger()
    catcher = _DropNoDataflowWarning()
    guard = logging.NullHandler() if not root.handlers else None
    root.addFilter(catcher)
    if guard is not None:
        root.addHandler(guard)
    try:
        yield catcher
    finally:
        root.removeFilter(catcher)
        if guard is not None:
            root.removeHandler(guard)


def corpus_codebleu(predictions: list[str], references: list[str], language: str) -> tuple[dict[str, float], int]:
    """calc_codebleu's five figures (values unchanged, as floats) and how many no-data-flow warnings
    it logged (dropped from the log, reported by the caller)."""
    if not predictions:
        raise ValueError("CodeBLEU of an empty corpus is undefined (codebleu divides by zero)")
    with _quiet_codebleu() as catcher:
        scores = calc_codebleu(references, predictions, language, weights=WEIGHTS)
    return {k: float(scores[k]) for k in COMPONENTS}, catcher.dropped


def sentence_codebleus(predictions: list[str], references: list[str], language: str) -> list[float]:
    """Per example: ``calc_codebleu([ref], [hyp], lang)['codebleu']`` (costs as much again as the corpus
    call; single-pair n-gram BLEU is unsmoothed, so it is often 0 for short outputs)."""
    with _quiet_codebleu():
        return [calc_codebleu([r], [p], language, weights=WEIGHTS)["codebleu"] for p, r in zip(predictions, references)]
