"""What the stand-in base pre-trains on: the corpus's pretrain pool, and an endless seeded stream of its
examples (span corruption, docstring->code, code->docstring) padded into T5 batches. The causal stand-in's
stream (model.pretrain_causal) is a SeededStream too."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from hybridcl.data.schema import DataError, Record
from hybridcl.model.span_corruption import raw_length_for, span_corrupt
from hybridcl.model.stand_in_tokenizer import sentinel_ids
from hybridcl.settings import LANGUAGES, task_cue

OBJECTIVES = ("span", "generate", "summarize")
SourcesTargets = tuple[list[str], list[str]]


def read_pretrain_records(corpus_dir: str | Path, skips: Counter | None = None) -> dict[str, list[Record]]:
    """The `pretrain` pool of every language found in `corpus_dir` (`<language>/pretrain.jsonl.gz` etc.):
    data no experiment trains or evaluates on.

    Records that fail validation are skipped and counted by reason in `skips`.
    """
    from hybridcl.data.csn import read_records
    from hybridcl.data.forms import split_path

    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise DataError(f"corpus {corpus_dir}: no such directory (make one with `hybridcl corpus build --out DIR`)")
    skips = Counter() if skips is None else skips
    found: dict[str, list[Record]] = {}
    for language in LANGUAGES:
        if not (corpus_dir / language).is_dir():
            continue
        try:
            path = split_path(corpus_dir, language, "pretrain")
        except DataError:
            continue
        if (corpus_dir / language) not in path.parents:
            continue  # split_path's one-language fallback (DIR/pretrain.jsonl.gz) is not this language's pool
        records = list(read_records(path, language=language, skips=skips))
        if records:
            found[language] = records
    if not found:
        raise DataError(
            f"corpus {corpus_dir}: no <language>/pretrain.jsonl(.gz) with usable records "
            f"(languages looked for: {', '.join(LANGUAGES)}); make one with `hybridcl corpus build --out DIR`"
        )
    return found


def corpus_fingerprint(corpus_dir: str | Path) -> str:
    """sha256 over the pretrain pool files (name and bytes) that a build reads."""
    digest = hashlib.sha256()
    for language in LANGUAGES:
        for path in sorted(Path(corpus_dir, language).glob("pretrain.jsonl*")):
            digest.update(f"{language}/{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def pretraining_records(corpus_dir: str | Path, max_code_chars: int, skips: Counter) -> list[Record]:
    """The pretrain records, language by language, whose code has at most `max_code_chars` characters;
    the others are counted in `skips`."""
    per_language = read_pretrain_records(corpus_dir, skips)
    records = []
    for language in sorted(per_language):
        for record in per_language[language]:
            if len(record.code) <= max_code_chars:
                records.append(record)
            else:
                skips["code_too_long"] += 1
    if not records:
        raise DataError(f"corpus {corpus_dir}: no pretrain record has code of at most {max_code_chars} characters")
    return records


class SeededStream:
    """Example `g` of an endless stream: epoch `g // len(self)` is a seeded permutation of every record's
    examples, one per objective. Pure in (seed, g): a resumed build needs only its step. A subclass names
    its `objectives` and makes example `i` of one of them (`g` seeds what is drawn afresh each time)."""

    objectives: tuple[str, ...] = ()

    def __init__(self, n_records: int, seed: int):
        self.n_records, self.seed = n_records, seed
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.objectives) * self.n_records

    def example(self, g: int) -> tuple[list[int], list[int]]:
        epoch, position = divmod(g, len(self))
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self)))
        objective, i = divmod(int(self._order[1][position]), self.n_records)
        return self.make(self.objectives[objective], i, g)

    def make(self, objective: str, i: int, g: int) -> tuple[list[int], list[int]]:
        raise NotImplementedError

    def batch(self, step: int, batch_size: int) -> list[tuple[list[int], list[int]]]:
        return [self.example(step * batch_size + j) for j in range(batch_size)]


class PretrainingStream(SeededStream):
    """The T5 stand-in's (inputs, targets) examples: span corruption, docstring->code, code->docstring."""

    objectives = OBJECTIVES

    def __init__(self, records: Sequence[Record], tokenizer, settings: dict, seed: int):
        from hybridcl.data.batching import encode_pairs

        super().__init__(len(records), seed)
        self.eos = tokenizer.eos_token_id
        self.sentinels = sentinel_ids(tokenizer)
        source_cap, target_cap = settings["max_source_tokens"], settings["max_target_tokens"]
        span_length = raw_length_for(target_cap)
        texts = [r.docstring + "\n" + r.code for r in records]
        encoded = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
        self.span_tokens = [e.ids[:span_length] for e in encoded]
        generate, summarize = dual_generation_texts(records)
        self.generate = list(zip(*encode_pairs(*generate, tokenizer, source_cap, target_cap)))
        self.summarize = list(zip(*encode_pairs(*summarize, tokenizer, target_cap, source_cap)))

    def make(self, objective: str, i: int, g: int) -> tuple[list[int], list[int]]:
        if objective == "generate":
            return self.generate[i]
        if objective == "summarize":
            return self.summarize[i]
        inputs, targets = span_corrupt(self.span_tokens[i], self.sentinels, np.random.default_rng([self.seed, g]))
        return inputs + [self.eos], targets + [self.eos]


def dual_generation_texts(records: Sequence[Record]) -> tuple[SourcesTargets, SourcesTargets]:
    """CodeT5's bimodal dual generation, as (sources, targets) texts: `generate <language>: <docstring>` ->
    code and `summarize <language>: <code>` -> docstring."""
    generate = ([task_cue("generate", r.language) + r.docstring for r in records], [r.code for r in records])
    summarize = ([task_cue("summarize", r.language) + r.code for r in records], [r.docstring for r in records])
    return generate, summarize


def collate(pairs: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad (inputs, targets) pairs into T5 tensors; padded label positions are -100."""
    width_in = max(len(i) for i, _ in pairs)
    width_out = max(len(t) for _, t in pairs)
    input_ids = torch.full((len(pairs), width_in), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(pairs), width_in), dtype=torch.long)
    labels = torch.full((len(pairs), width_out), -100, dtype=torch.long)
    for row, (inputs, targets) in enumerate(pairs):
        input_ids[row, : len(inputs)] = torch.tensor(inputs)
        attention_mask[row, : len(inputs)] = 1
        labels[row, : len(targets)] = torch.tensor(targets)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
