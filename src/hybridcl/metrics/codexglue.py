"""BLEU the way CodeXGLUE and the papers on CodeSearchNet report it, beside sacrebleu's (bleu.py).

Two published definitions, implemented here from them (no CodeXGLUE code is imported):

- ``corpus_bleu_smoothed`` (generation: docstring -> code, CodeXGLUE's text-to-code evaluator):
  corpus BLEU-4 (Papineni et al. 2002) on whitespace tokens, every n-gram precision add-one
  smoothed, ``p_n = (matches_n + 1) / (candidates_n + 1)``; brevity penalty ``exp(1 - r / c)`` when
  the candidate corpus is not longer than the references (c <= r), 1 otherwise.
- ``smooth_bleus`` / their mean (summarisation: code -> docstring, CodeXGLUE's code-to-text evaluator,
  "smoothed BLEU-4" of Lin & Och 2004): per sentence, after lower-casing and the NIST mteval
  tokenisation (``nist_tokens``), ``exp(mean_n log((matches_n + s_n) / (candidates_n + s_n)) + bp)``
  with ``s_1 = 0`` and ``s_n = 1`` for n > 1 (a sentence without a single matching word scores ~0), and
  ``bp = min(0, 1 - (r + 1) / (c + 1))``. The corpus figure is the mean over sentences.

Both are on 0-1 (the papers print them x 100).
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from xml.sax.saxutils import unescape

MAX_ORDER = 4

# NIST mteval-v11a tokenisation, as CodeXGLUE's smooth BLEU applies it after splitting words from
# punctuation (which also joins the lines): pad punctuation (not the apostrophe) and periods/commas
# that are not part of a number.
_WORD_OR_PUNCT = re.compile(r"\w+|[^\s\w]")
_NIST_PUNCT = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def ngram_counts(tokens: list[str], order: int) -> Counter:
    return Counter(tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1))


def clipped_matches(candidate: list[str], reference: list[str], order: int) -> int:
    return sum((ngram_counts(candidate, order) & ngram_counts(reference, order)).values())


def corpus_bleu_smoothed(predictions: list[str], references: list[str]) -> float:
    candidates = [p.split() for p in predictions]
    refs = [r.split() for r in references]
    c, r = sum(map(len, candidates)), sum(map(len, refs))
    if c == 0 or r == 0:
        return 0.0
    log_precision = 0.0
    for order in range(1, MAX_ORDER + 1):
        matches = sum(clipped_matches(cand, ref, order) for cand, ref in zip(candidates, refs))
        possible = sum(max(len(cand) - order + 1, 0) for cand in candidates)
        log_precision += math.log((matches + 1) / (possible + 1)) / MAX_ORDER
    brevity = 1.0 if c > r else math.exp(1 - r / c)
    return math.exp(log_precision) * brevity


def nist_tokens(text: str) -> list[str]:
    text = " ".join(_WORD_OR_PUNCT.findall(text.strip().lower()))
    text = " " + unescape(text, {"&quot;": '"'}) + " "
    for pattern, replacement in _NIST_PUNCT:
        text = pattern.sub(replacement, text)
    return text.split()


def smooth_bleu(prediction: str, reference: str) -> float:
    """One sentence's smoothed BLEU-4. Like the published script, every count gets the smallest positive
    float added before its log: no unigram match gives about 1e-77, an empty candidate exp(bp)."""
    candidate, ref = nist_tokens(prediction), nist_tokens(reference)
    log_score = 0.0
    for order in range(1, MAX_ORDER + 1):
        matches = clipped_matches(candidate, ref, order)
        possible = max(len(candidate) - order + 1, 0)
        smoothing = 0 if order == 1 else 1
        log_score += (_log(matches + smoothing) - _log(possible + smoothing)) / MAX_ORDER
    brevity = min(0.0, 1 - (len(ref) + 1) / (len(candidate) + 1))
    return math.exp(log_score + brevity)


def _log(count: int) -> float:
    return math.log(count + sys.float_info.min)


def smooth_bleus(predictions: list[str], references: list[str]) -> list[float]:
    return [smooth_bleu(p, r) for p, r in zip(predictions, references)]
