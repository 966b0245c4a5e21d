"""The offline stand-in base: a byte-level BPE tokenizer + a small T5 pre-trained with span corruption.

`hybridcl base build --corpus DIR --out DIR [--size tiny|small] [--steps N]` calls
`build_stand_in_base`, which
1. trains a byte-level BPE tokenizer on the `pretrain` pool of every language in the corpus
   (`DIR/<language>/pretrain.jsonl.gz`, packages no task trains or evaluates on), code and docstrings. Special tokens follow CodeT5's layout:
   `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3, `<mask>`=4, then the sentinels `<extra_id_0..99>`=5..104.
   Encoding appends `</s>`; decoding with `skip_special_tokens=True` gives the text back byte for byte
   (no normaliser, byte-level pre-tokenizer and decoder, `clean_up_tokenization_spaces=False`);
2. pre-trains a small T5 with T5's span-corruption objective (noise density 0.15, mean span length 3,
   one sentinel per span; documents packed, separated by `</s>`, as T5 does, into chunks whose corrupted
   input is at most `max_length` tokens), on code and docstring+code examples of all languages shuffled
   together, with Adafactor (T5's optimiser; linear warm-up, linear decay) for a bounded number of steps.
   Adafactor scales each update by its parameter's RMS: T5's tied embedding is initialised with std 1 (its
   output is rescaled by d_model**-0.5) while the other weights have std ~d_model**-0.5, so AdamW's one
   absolute step size trains the embedding ~16x too slowly at a learning rate the rest can bear, and the
   loss plateaus near the unigram level. Dropout is 0 while pre-training (as in T5 v1.1); the saved config
   carries 0.1 for fine-tuning, like codet5-small;
3. saves model (safetensors) + tokenizer with `save_pretrained` into `--out`, with `build_info.json`
   (sizes, steps, timings, loss curve summary, corpus counts), so `load_base(ModelConfig(name=out))`
   reads it. The output directory is written next to its final place and renamed into it at the end.

Everything is seeded; the same corpus, size, steps and seed give the same base on the same machine.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from hybridcl import versions
from hybridcl.config import LANGUAGES
from hybridcl.data.schema import DataError, Record

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
N_SENTINELS = 100
SENTINELS = tuple(f"<extra_id_{i}>" for i in range(N_SENTINELS))
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, MASK) + SENTINELS  # ids 0..104, in this order

NOISE_DENSITY = 0.15
MEAN_SPAN_LENGTH = 3.0

# Model sizes. `micro` (0.3M parameters) is for tests and smoke runs: it builds in seconds. `tiny` (7.6M) is
# the default stand-in: ~0.35 s a step at batch 8 on 2 idle CPU cores (~0.63 s at 1 thread), so tokenizer
# + 800 steps take about 5 minutes (longer on a shared machine). `lr` is Adafactor's (relative to each
# parameter's RMS): 3e-2 beat 1e-2 slightly on tiny; `small` (~23M, ~3x per step, not timed) takes the
# safer 1e-2. max_length stays 256: fine-tuning feeds up to 256 tokens, and a base pre-trained on
# 128-token chunks never trains the relative-position buckets (or sentinels) beyond them.
SIZES: dict[str, dict] = {
    "micro": dict(vocab_size=1000, d_model=64, d_kv=16, d_ff=256, num_layers=2, num_heads=4,
                  max_length=64, batch_size=8, lr=1e-2, steps=60),
    "tiny": dict(vocab_size=8000, d_model=256, d_kv=64, d_ff=1024, num_layers=3, num_heads=4,
                 max_length=256, batch_size=8, lr=3e-2, steps=800),
    "small": dict(vocab_size=16000, d_model=384, d_kv=64, d_ff=1536, num_layers=4, num_heads=6,
                  max_length=256, batch_size=8, lr=1e-2, steps=1500),
}
BUILD_INFO = "build_info.json"


# ----------------------------------------------------------------------------------------- corpus


def read_pretrain_records(corpus_dir: str | Path, skips: Counter | None = None) -> dict[str, list[Record]]:
    """The `pretrain` pool of every language found in `corpus_dir` (`<language>/pretrain.jsonl.gz` etc.):
    data no experiment trains or evaluates on.

    Records that fail validation are skipped and counted by reason in `skips`.
    """
    from hybridcl.data.csn import read_records, split_path

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


def pretraining_texts(records: Iterable[Record], rng: random.Random) -> list[str]:
    """One text per record, shuffled: its code, or (half of the time) its docstring followed by its code."""
    texts = [r.docstring + "\n" + r.code if rng.random() < 0.5 else r.code for r in records]
    rng.shuffle(texts)
    return texts


# -------------------------------------------------------------------------------------- tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2):
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    eos_id = backend.token_to_id(EOS)
    backend.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, eos_id)]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK, mask_token=MASK,
        extra_special_tokens=list(SENTINELS),
        clean_up_tokenization_spaces=False,
        model_max_length=512,
    )
    ids = tokenizer.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert ids == list(range(len(SPECIAL_TOKENS))), f"special token ids out of place: {ids[:6]}..."
    return tokenizer


def sentinel_ids(tokenizer) -> list[int]:
    """Ids of `<extra_id_0>`, `<extra_id_1>`, ... in order."""
    return tokenizer.convert_tokens_to_ids(list(SENTINELS))


# -------------------------------------------------------------------------------- span corruption


def random_spans_noise_mask(length: int, rng: np.random.Generator, noise_density: float = NOISE_DENSITY,
                            mean_span_length: float = MEAN_SPAN_LENGTH) -> np.ndarray:
    """T5's `random_spans_noise_mask`: a boolean mask of `length` with round(length * density) noise tokens
    in about `noise / mean_span_length` spans; spans alternate non-noise, noise, ... (ending on noise)."""
    if length < 2:
        raise ValueError(f"span corruption needs at least 2 tokens, got {length}")
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_nonnoise = length - num_noise
    num_spans = max(int(round(min(num_noise, num_nonnoise) / mean_span_length)), 1)

    def segment(num_items: int, num_segments: int) -> np.ndarray:
        # `num_segments` positive lengths summing to `num_items`, uniformly at random.
        cuts = np.zeros(num_items - 1, dtype=bool)
        cuts[: num_segments - 1] = True
        rng.shuffle(cuts)
        starts = np.concatenate([[True], cuts])
        return np.bincount(np.cumsum(starts) - 1)

    lengths = np.stack([segment(num_nonnoise, num_spans), segment(num_noise, num_spans)], axis=1).reshape(-1)
    is_noise = np.repeat(np.tile([False, True], num_spans), lengths)
    return is_noise


def span_corrupt(tokens: Sequence[int], sentinels: Sequence[int], rng: np.random.Generator,
                 noise_density: float = NOISE_DENSITY, mean_span_length: float = MEAN_SPAN_LENGTH
                 ) -> tuple[list[int], list[int]]:
    """(inputs, targets) for T5's span corruption of `tokens` (no `</s>` added; callers append it).

    Each noise span is replaced in `inputs` by the next sentinel (`sentinels[0]`, `sentinels[1]`, ...);
    `targets` is each sentinel followed by the tokens it replaced.
    """
    mask = random_spans_noise_mask(len(tokens), rng, noise_density, mean_span_length)
    inputs: list[int] = []
    targets: list[int] = []
    span = -1
    previous = False
    for token, noise in zip(tokens, mask):
        if noise:
            if not previous:
                span += 1
                if span >= len(sentinels):
                    raise ValueError(f"{span + 1} noise spans but only {len(sentinels)} sentinels")
                inputs.append(sentinels[span])
                targets.append(sentinels[span])
            targets.append(int(token))
        else:
            inputs.append(int(token))
        previous = bool(noise)
    return inputs, targets


def reconstruct(inputs: Sequence[int], targets: Sequence[int], sentinels: Sequence[int]) -> list[int]:
    """The original sequence from span-corrupted (inputs, targets): the inverse of `span_corrupt`."""
    sentinel_set = set(sentinels)
    spans: dict[int, list[int]] = {}
    current = None
    for token in targets:
        if token in sentinel_set:
            current = spans.setdefault(token, [])
        elif current is not None:
            current.append(token)
    out: list[int] = []
    for token in inputs:
        out.extend(spans.get(token, [])) if token in sentinel_set else out.append(token)
    return out


def corrupted_lengths(raw_length: int, noise_density: float = NOISE_DENSITY,
                      mean_span_length: float = MEAN_SPAN_LENGTH) -> tuple[int, int]:
    """(inputs, targets) lengths, each with `</s>`, of a span-corrupted chunk of `raw_length` tokens."""
    num_noise = min(max(int(round(raw_length * noise_density)), 1), raw_length - 1)
    num_spans = max(int(round(min(num_noise, raw_length - num_noise) / mean_span_length)), 1)
    return raw_length - num_noise + num_spans + 1, num_noise + num_spans + 1


def raw_length_for(max_inputs: int, noise_density: float = NOISE_DENSITY,
                   mean_span_length: float = MEAN_SPAN_LENGTH) -> int:
    """The longest chunk whose corrupted input (with `</s>`) has at most `max_inputs` tokens."""
    length = max_inputs
    while corrupted_lengths(length + 1, noise_density, mean_span_length)[0] <= max_inputs:
        length += 1
    return length


def packed_chunks(texts: Sequence[str], tokenizer, chunk_length: int, rng: random.Random,
                  block: int = 512) -> Iterator[list[int]]:
    """Endless chunks of `chunk_length` tokens: texts tokenized, each followed by `</s>`, concatenated.

    Texts are tokenized lazily, `block` at a time; every pass over the texts reshuffles them.
    """
    eos = tokenizer.eos_token_id
    backend = tokenizer.backend_tokenizer
    order = list(range(len(texts)))
    buffer: list[int] = []
    epoch = 0
    while True:
        if epoch:
            rng.shuffle(order)
        for start in range(0, len(order), block):
            encodings = backend.encode_batch([texts[i] for i in order[start:start + block]], add_special_tokens=False)
            for encoding in encodings:
                buffer.extend(encoding.ids)
                buffer.append(eos)
            while len(buffer) >= chunk_length:
                yield buffer[:chunk_length]
                del buffer[:chunk_length]
        epoch += 1


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


# ------------------------------------------------------------------------------------------ model


def stand_in_config(size: str, vocab_size: int, dropout_rate: float = 0.1):
    """codet5-small's config (token ids, activations, position buckets) at a stand-in size."""
    from hybridcl.model.base import codet5_small_config

    spec = SIZES[size]
    config = codet5_small_config()
    for key, value in dict(vocab_size=vocab_size, d_model=spec["d_model"], d_kv=spec["d_kv"], d_ff=spec["d_ff"],
                           num_layers=spec["num_layers"], num_decoder_layers=spec["num_layers"],
                           num_heads=spec["num_heads"], dropout_rate=dropout_rate).items():
        setattr(config, key, value)
    return config


def build_stand_in_base(corpus_dir: str | Path, out_dir: str | Path, size: str = "tiny", steps: int | None = None,
                        seed: int = 0, *, batch_size: int | None = None, lr: float | None = None,
                        max_length: int | None = None, vocab_size: int | None = None,
                        progress: bool = True) -> dict:
    """Build the stand-in base from `corpus_dir` into `out_dir`; returns the build info (also in build_info.json).

    `steps`, `batch_size`, `lr`, `max_length` (the corrupted input's length) and `vocab_size` default to
    the size's values in `SIZES`.
    """
    from tqdm.auto import tqdm
    from transformers import T5ForConditionalGeneration
    from transformers.optimization import Adafactor

    if size not in SIZES:
        raise DataError(f"unknown stand-in size {size!r}; choose from {list(SIZES)}")
    spec = SIZES[size]
    steps = spec["steps"] if steps is None else int(steps)
    batch_size = batch_size or spec["batch_size"]
    lr = lr or spec["lr"]
    max_length = max_length or spec["max_length"]
    vocab_size = vocab_size or spec["vocab_size"]
    if steps < 1:
        raise DataError(f"steps must be positive, got {steps}")
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)

    started = time.perf_counter()
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)

    # 1. corpus and tokenizer
    skips: Counter = Counter()
    per_language = read_pretrain_records(corpus_dir, skips)
    records = [record for language in sorted(per_language) for record in per_language[language]]
    if progress:
        print(f"training a {vocab_size:,}-token BPE tokenizer on {len(records):,} records ...", flush=True)
    tokenizer = train_tokenizer(_tokenizer_texts(records), vocab_size=vocab_size)
    tokenizer_s = time.perf_counter() - started

    # 2. pre-training
    texts = pretraining_texts(records, rng)
    sentinels = sentinel_ids(tokenizer)
    chunk_length = raw_length_for(max_length)
    chunks = packed_chunks(texts, tokenizer, chunk_length, rng)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(stand_in_config(size, len(tokenizer), dropout_rate=0.0))
    model.train()
    optimizer = Adafactor(model.parameters(), lr=lr, scale_parameter=True, relative_step=False, warmup_init=False)
    warmup = max(1, int(0.06 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.1, (steps - step) / max(1, steps - warmup)))
    )
    losses: list[float] = []
    tokens_seen = 0
    train_started = time.perf_counter()
    bar = tqdm(range(steps), desc=f"pre-training {size} stand-in", unit="step", disable=not progress, dynamic_ncols=True)
    smoothed = None
    for _ in bar:
        pairs = []
        for _ in range(batch_size):
            inputs, targets = span_corrupt(next(chunks), sentinels, np_rng)
            pairs.append((inputs + [tokenizer.eos_token_id], targets + [tokenizer.eos_token_id]))
        batch = collate(pairs, tokenizer.pad_token_id)
        tokens_seen += int(batch["attention_mask"].sum())
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"pre-training diverged at step {len(losses) + 1} (loss {value}); try a lower --lr")
        losses.append(value)
        smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
        bar.set_postfix(loss=f"{smoothed:.3f}")
    bar.close()
    train_s = time.perf_counter() - train_started

    # 3. save (dropout 0.1 for fine-tuning, as in codet5-small)
    model.config.dropout_rate = 0.1
    model.eval()
    window = max(1, min(20, steps // 4))
    info = {
        "size": size,
        "architecture": {k: spec[k] for k in ("d_model", "d_kv", "d_ff", "num_layers", "num_heads")},
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "seed": seed,
        "steps": steps,
        "batch_size": batch_size,
        "lr": lr,
        "max_length": max_length,
        "chunk_length": chunk_length,
        "noise_density": NOISE_DENSITY,
        "mean_span_length": MEAN_SPAN_LENGTH,
        "loss_window": window,
        "loss_start": float(np.mean(losses[:window])),
        "loss_end": float(np.mean(losses[-window:])),
        "loss_curve": _curve(losses),
        "input_tokens": tokens_seen,
        "corpus": {
            "path": str(Path(corpus_dir).resolve()),
            "train_records": {language: len(rs) for language, rs in sorted(per_language.items())},
            "skipped": dict(sorted(skips.items())),
            "texts": len(texts),
        },
        "time_s": {
            "tokenizer": round(tokenizer_s, 2),
            "pretrain": round(train_s, 2),
            "per_step": round(train_s / steps, 4),
        },
        "threads": torch.get_num_threads(),
        "versions": versions(),
    }
    _save(model, tokenizer, info, out_dir, started)
    return info


def _tokenizer_texts(records: Sequence[Record]) -> Iterator[str]:
    for record in records:
        yield record.code
        yield record.docstring


def _curve(losses: Sequence[float], points: int = 10) -> list[dict]:
    """Mean loss over `points` consecutive equal slices of the run."""
    edges = np.linspace(0, len(losses), min(points, len(losses)) + 1).astype(int)
    return [{"steps": [int(a) + 1, int(b)], "loss": round(float(np.mean(losses[a:b])), 4)}
            for a, b in zip(edges[:-1], edges[1:])]


def _check_out_dir(out_dir: Path) -> None:
    """`out_dir` must be absent, empty, or an earlier stand-in base (which is replaced)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise DataError(f"--out {out_dir} is a file")
        if any(out_dir.iterdir()) and not (out_dir / BUILD_INFO).is_file():
            raise DataError(f"--out {out_dir} is a non-empty directory that is not a stand-in base; choose another")


def _save(model, tokenizer, info: dict, out_dir: Path, started: float) -> None:
    """save_pretrained into a temporary sibling of `out_dir`, then swap it into place."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        info["time_s"]["total"] = round(time.perf_counter() - started, 2)
        (staging / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(staging, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
