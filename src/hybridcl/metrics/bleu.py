"""BLEU: sacrebleu's corpus BLEU-4 (default "13a" tokenisation), reported on 0-1.

Corpus figure: ``sacrebleu.corpus_bleu(hyps, [refs]).score / 100`` -- that exact call, nothing added.
Per example: ``sacrebleu.sentence_bleu(hyp, [ref]).score / 100`` (exp smoothing, effective order:
sacrebleu's sentence defaults). One ``BLEU`` object with those settings is built once and reused,
which is what ``sentence_bleu`` does internally on every call (tests assert equality with it).

An empty hypothesis scores 0 (sacrebleu handles it: no n-grams, brevity penalty 0).
"""

from __future__ import annotations

import sacrebleu
from sacrebleu.metrics import BLEU

_sentence_metric: BLEU | None = None


def corpus_bleu(predictions: list[str], references: list[str]) -> float:
    return sacrebleu.corpus_bleu(predictions, [references]).score / 100


def sentence_bleus(predictions: list[str], references: list[str]) -> list[float]:
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
    return [_sentence_metric.sentence_score(p, [r]).score / 100 for p, r in zip(predictions, references)]
