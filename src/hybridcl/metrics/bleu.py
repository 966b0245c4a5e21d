"""BLEU: sacrebleu's corpus BLEU-4 (default "13a" tokenisation), reported on 0-1.

Corpus figure: ``sacrebleu.corpus_bleu(hyps, [refs]).score / 100`` -- that exact call, nothing added.
Per example: ``sacrebleu.sentence_bleu(hyp, [ref]).score / 100`` (exp smoothing, effective order:
sacrebleu's sentence defaults). One ``BLEU`` object with those settings is built once and reused,
which is what ``sentence_bleu`` does internally on every call (tests assert equality with it).

An empty hypothesis scores 0 (sacrebleu handles it: no n-grams, brevity penalty 0).

Per-example sufficient statistics (``sentence_stats``): sacrebleu's own, one list of ints per example,
``[hyp_len, ref_len, matches_1..4, totals_1..4]``. Summed over the examples they give the corpus
figure (``sacrebleu.BLEU.compute_bleu``), so a resample of the examples can be rescored without the
texts (hybridcl.bootstrap).
"""

from __future__ import annotations

import sacrebleu
from sacrebleu.metrics import BLEU

_sentence_metric: BLEU | None = None


def corpus_bleu(predictions: list[str], references: list[str]) -> float:
    return sacrebleu.corpus_bleu(predictions, [references]).score / 100


def _sentence_bleu_metric() -> BLEU:
    global _sentence_metric
    if _sentence_metric is None:
        # the same settings sacrebleu.sentence_bleu() builds a BLEU object with on every call
        _sentence_metric = BLEU(
            lowercase=False,
            tokenize=BLEU.TOKENIZER_DEFAULT,
            force=False,
            smooth_method="exp",
            smooth_value=None,
            effective_order=True,
        )
    return _sentence_metric


def sentence_bleus(predictions: list[str], references: list[str]) -> list[float]:
    metric = _sentence_bleu_metric()
    return [metric.sentence_score(p, [r]).score / 100 for p, r in zip(predictions, references)]


def sentence_stats(predictions: list[str], references: list[str]) -> list[list[int]]:
    """Each example's [hyp_len, ref_len, matches_1..4, totals_1..4], tokenised as the corpus figure is."""
    metric = _sentence_bleu_metric()  # the corpus figure's tokeniser and casing; smoothing plays no part
    stats = []
    for prediction, reference in zip(predictions, references):
        score = metric.sentence_score(prediction, [reference])
        stats.append([score.sys_len, score.ref_len, *score.counts, *score.totals])
    return stats
