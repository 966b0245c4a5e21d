"""The offline stand-in base: a byte-level BPE tokenizer + a small T5 pre-trained the way CodeT5 was.

`hybridcl base build --corpus DIR --out DIR [--size tiny] [--steps N]` calls `build_stand_in_base`, which
1. trains a byte-level BPE tokenizer on the `pretrain` pool of every language in the corpus
   (`DIR/<language>/pretrain.jsonl.gz`: packages no task trains or evaluates on), code and docstrings.
   Special tokens follow CodeT5's layout: `<pad>`=0, `<s>`=1, `</s>`=2, `<unk>`=3, `<mask>`=4, then the
   sentinels `<extra_id_0..99>`=5..104. Encoding appends `</s>`; decoding with `skip_special_tokens=True`
   gives the text back byte for byte (no normaliser, byte-level pre-tokenizer and decoder);
2. pre-trains a small T5 on three objectives, as CodeT5 (Wang et al., 2021) combines them. Every pretrain
   record whose code has at most `max_code_chars` characters gives one example of each per epoch:
   - span corruption (T5's: noise density 0.15, mean span 3, one sentinel per span) of its docstring and code;
   - bimodal dual generation: `generate <language>: <docstring>` -> code and `summarize <language>: <code>`
     -> docstring, tokenized exactly as the experiments tokenize (data.batching.encode_pairs, same caps).
   The task prefix is CodeT5's multi-task convention; the experiments feed the bare docstring, so the base
   does not solve their task by itself (its stage-0 score stays low) but knows code, docstrings and how
   they relate, which is what a fine-tuned stage builds on;
   with Adafactor (T5's optimiser) at a constant relative step after a linear warm-up: T5's inverse-square-
   root schedule is constant for its first 10K steps, and a constant step makes every step count a finished
   budget (the budget curve of docs/stand-in-base.md comes from snapshots of one run). Dropout is 0 while
   pre-training (T5 v1.1); the saved config carries 0.1 for fine-tuning, like codet5-small;
3. saves model (safetensors) + tokenizer with `save_pretrained` into `--out`, with `build_info.json`: the
   settings, corpus fingerprint, command, steps, tokens seen, loss curve, wall time and every file's sha256.

A build keeps its progress in `.<out>.build/` beside `--out` (model, optimizer state, step; every
`SAVE_EVERY_S` seconds): killed and started again with the same settings, it continues where it stopped
and ends with the same weights as an uninterrupted build. Everything is seeded: example `g` of the data
stream is a pure function of the seed and `g`, so no data iterator has to be saved.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from hybridcl import versions
from hybridcl.config import LANGUAGES, task_cue
from hybridcl.data.schema import DataError, Record
from hybridcl.faults import kill_point
from hybridcl.fingerprints import file_sha256
from hybridcl.model import build_state

PAD, BOS, EOS, UNK, MASK = "<pad>", "<s>", "</s>", "<unk>", "<mask>"
N_SENTINELS = 100
SENTINELS = tuple(f"<extra_id_{i}>" for i in range(N_SENTINELS))
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, MASK) + SENTINELS  # ids 0..104, in this order

NOISE_DENSITY = 0.15
MEAN_SPAN_LENGTH = 3.0
OBJECTIVES = ("span", "generate", "summarize")

# Model sizes and their build settings. `micro` (0.3M parameters) is for tests and smoke runs: it builds
# in seconds. `tiny` (7.6M) is the shipped stand-in (models/stand-in-base; its size, steps and budget
# were chosen from the curve in docs/stand-in-base.md). `lr` is Adafactor's relative step. The token caps
# are the experiments' (configs/local.yaml: 64 docstring, 128 code tokens); span corruption inputs are at
# most `max_target_tokens` long.
SIZES: dict[str, dict] = {
    "micro": dict(
        vocab_size=1000,
        d_model=64,
        d_kv=16,
        d_ff=256,
        num_layers=2,
        num_heads=4,
        batch_size=8,
        lr=1e-2,
        warmup_steps=10,
        steps=60,
        max_source_tokens=32,
        max_target_tokens=64,
        max_code_chars=400,
    ),
    "tiny": dict(
        vocab_size=8000,
        d_model=256,
        d_kv=64,
        d_ff=1024,
        num_layers=3,
        num_heads=4,
        batch_size=16,
        lr=1e-2,
        warmup_steps=200,
        steps=4500,
        max_source_tokens=64,
        max_target_tokens=128,
        max_code_chars=600,
    ),
    "small": dict(
        vocab_size=16000,
        d_model=384,
        d_kv=64,
        d_ff=1536,
        num_layers=4,
        num_heads=6,
        batch_size=16,
        lr=1e-2,
        warmup_steps=200,
        steps=4000,
        max_source_tokens=64,
        max_target_tokens=128,
        max_code_chars=600,
    ),
}
ARCHITECTURE_KEYS = ("d_model", "d_kv", "d_ff", "num_layers", "num_heads")
BUILD_INFO = "build_info.json"
SAVE_EVERY_S = 60.0


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


def corpus_fingerprint(corpus_dir: str | Path) -> str:
    """sha256 over the pretrain pool files (name and bytes) that a build reads."""
    digest = hashlib.sha256()
    for language in LANGUAGES:
        for path in sorted(Path(corpus_dir, language).glob("pretrain.jsonl*")):
            digest.update(f"{language}/{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


# -------------------------------------------------------------------------------------- tokenizer


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2):
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

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
    return wrap_tokenizer(backend.to_str())


def wrap_tokenizer(backend_json: str):
    """A trained `tokenizers` tokenizer (its JSON) as the transformers fast tokenizer the base ships."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(backend_json),
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        mask_token=MASK,
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


def random_spans_noise_mask(
    length: int,
    rng: np.random.Generator,
    noise_density: float = NOISE_DENSITY,
    mean_span_length: float = MEAN_SPAN_LENGTH,
) -> np.ndarray:
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


def span_corrupt(
    tokens: Sequence[int],
    sentinels: Sequence[int],
    rng: np.random.Generator,
    noise_density: float = NOISE_DENSITY,
    mean_span_length: float = MEAN_SPAN_LENGTH,
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


def corrupted_lengths(
    raw_length: int, noise_density: float = NOISE_DENSITY, mean_span_length: float = MEAN_SPAN_LENGTH
) -> tuple[int, int]:
    """(inputs, targets) lengths, each with `</s>`, of a span-corrupted chunk of `raw_length` tokens."""
    num_noise = min(max(int(round(raw_length * noise_density)), 1), raw_length - 1)
    num_spans = max(int(round(min(num_noise, raw_length - num_noise) / mean_span_length)), 1)
    return raw_length - num_noise + num_spans + 1, num_noise + num_spans + 1


def raw_length_for(
    max_inputs: int, noise_density: float = NOISE_DENSITY, mean_span_length: float = MEAN_SPAN_LENGTH
) -> int:
    """The longest chunk whose corrupted input (with `</s>`) has at most `max_inputs` tokens."""
    length = max_inputs
    while corrupted_lengths(length + 1, noise_density, mean_span_length)[0] <= max_inputs:
        length += 1
    return length


# -------------------------------------------------------------------------------- the data stream


class PretrainingStream:
    """Example `g` of an endless stream: epoch `g // len(self)` is a seeded permutation of every record's
    three examples (span corruption, docstring->code, code->docstring). Pure in (seed, g): a resumed build
    needs only its step."""

    def __init__(self, records: Sequence[Record], tokenizer, settings: dict, seed: int):
        from hybridcl.data.batching import encode_pairs

        self.seed, self.eos = seed, tokenizer.eos_token_id
        self.sentinels = sentinel_ids(tokenizer)
        source_cap, target_cap = settings["max_source_tokens"], settings["max_target_tokens"]
        span_length = raw_length_for(target_cap)
        texts = [r.docstring + "\n" + r.code for r in records]
        encoded = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
        self.span_tokens = [e.ids[:span_length] for e in encoded]
        self.generate = list(
            zip(
                *encode_pairs(
                    [task_cue("generate", r.language) + r.docstring for r in records],
                    [r.code for r in records],
                    tokenizer,
                    source_cap,
                    target_cap,
                )
            )
        )
        self.summarize = list(
            zip(
                *encode_pairs(
                    [task_cue("summarize", r.language) + r.code for r in records],
                    [r.docstring for r in records],
                    tokenizer,
                    target_cap,
                    source_cap,
                )
            )
        )
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(OBJECTIVES) * len(self.span_tokens)

    def example(self, g: int) -> tuple[list[int], list[int]]:
        epoch, position = divmod(g, len(self))
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, np.random.default_rng([self.seed, epoch]).permutation(len(self)))
        objective, i = divmod(int(self._order[1][position]), len(self.span_tokens))
        if OBJECTIVES[objective] == "generate":
            return self.generate[i]
        if OBJECTIVES[objective] == "summarize":
            return self.summarize[i]
        inputs, targets = span_corrupt(self.span_tokens[i], self.sentinels, np.random.default_rng([self.seed, g]))
        return inputs + [self.eos], targets + [self.eos]

    def batch(self, step: int, batch_size: int) -> list[tuple[list[int], list[int]]]:
        return [self.example(step * batch_size + j) for j in range(batch_size)]


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
    for key, value in dict(
        vocab_size=vocab_size,
        d_model=spec["d_model"],
        d_kv=spec["d_kv"],
        d_ff=spec["d_ff"],
        num_layers=spec["num_layers"],
        num_decoder_layers=spec["num_layers"],
        num_heads=spec["num_heads"],
        dropout_rate=dropout_rate,
    ).items():
        setattr(config, key, value)
    return config


# ------------------------------------------------------------------------------------------ build


def build_settings(size: str, steps: int | None = None, seed: int = 0) -> dict:
    """Everything a build's result depends on besides the corpus (recorded in build_info.json)."""
    if size not in SIZES:
        raise DataError(f"unknown stand-in size {size!r}; choose from {list(SIZES)}")
    settings = dict(
        SIZES[size],
        size=size,
        seed=int(seed),
        objectives=list(OBJECTIVES),
        noise_density=NOISE_DENSITY,
        mean_span_length=MEAN_SPAN_LENGTH,
    )
    if steps is not None:
        settings["steps"] = int(steps)
    if settings["steps"] < 1:
        raise DataError(f"steps must be positive, got {settings['steps']}")
    return settings


def build_stand_in_base(
    corpus_dir: str | Path,
    out_dir: str | Path,
    size: str = "tiny",
    steps: int | None = None,
    seed: int = 0,
    *,
    snapshots: Sequence[int] = (),
    progress: bool = True,
) -> dict:
    """Build the stand-in base from `corpus_dir` into `out_dir`, continuing a killed build of the same
    settings; returns the build info (also in build_info.json). `snapshots`: steps at which a complete
    base is also saved, to `<out_dir>-step<N>` (the budget curve)."""
    settings = build_settings(size, steps, seed)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    skips: Counter = Counter()
    records = _pretraining_records(corpus_dir, settings["max_code_chars"], skips)
    corpus = {
        "path": str(Path(corpus_dir).resolve()),
        "fingerprint": corpus_fingerprint(corpus_dir),
        "records": dict(sorted(Counter(r.language for r in records).items())),
        "skipped": dict(sorted(skips.items())),
    }
    state = build_state.BuildState.open(out_dir, dict(settings, corpus=corpus["fingerprint"]), progress=progress)

    saved = state.saved_tokenizer()
    tokenizer = wrap_tokenizer(saved) if saved else _first_tokenizer(state, records, settings, progress)
    stream = PretrainingStream(records, tokenizer, settings, seed)
    model = _fresh_model(settings, len(tokenizer), seed)
    optimizer = _optimizer(model, settings)
    state.restore(model, optimizer)

    def save(folder: Path) -> dict:
        info = _build_info(model, state, dict(settings, steps=state.step), corpus)
        _save(model, tokenizer, info, folder)
        return info

    snapshot_at = {int(n): out_dir.with_name(f"{out_dir.name}-step{int(n)}") for n in snapshots}
    for folder in snapshot_at.values():
        _check_out_dir(folder)
    _train(model, optimizer, stream, state, settings, tokenizer.pad_token_id, snapshot_at, save, progress)
    info = save(out_dir)
    state.remove()
    return info


def _pretraining_records(corpus_dir: str | Path, max_code_chars: int, skips: Counter) -> list[Record]:
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


def _first_tokenizer(state: build_state.BuildState, records: Sequence[Record], settings: dict, progress: bool):
    if progress:
        print(f"training a {settings['vocab_size']:,}-token BPE tokenizer on {len(records):,} records ...", flush=True)
    began = time.perf_counter()
    tokenizer = train_tokenizer(_tokenizer_texts(records), vocab_size=settings["vocab_size"])
    state.save_tokenizer(tokenizer.backend_tokenizer.to_str(), time.perf_counter() - began)
    return tokenizer


def _fresh_model(settings: dict, vocab_size: int, seed: int):
    from transformers import T5ForConditionalGeneration

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return T5ForConditionalGeneration(stand_in_config(settings["size"], vocab_size, dropout_rate=0.0)).train()


def _optimizer(model, settings: dict):
    from transformers.optimization import Adafactor

    # Adafactor scales each update by its parameter's RMS: T5's tied embedding starts at std 1 while the
    # other weights have std ~d_model**-0.5, so AdamW's one absolute step trains the embedding ~16x too slowly.
    return Adafactor(
        model.parameters(), lr=settings["lr"], scale_parameter=True, relative_step=False, warmup_init=False
    )


def _train(
    model,
    optimizer,
    stream: PretrainingStream,
    state: build_state.BuildState,
    settings: dict,
    pad_id: int,
    snapshot_at: dict[int, Path],
    save,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    steps, batch_size = settings["steps"], settings["batch_size"]
    bar = tqdm(
        total=steps,
        initial=state.step,
        desc=f"pre-training {settings['size']} stand-in",
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
    )
    last_save = time.perf_counter()
    while state.step < steps:
        began = time.perf_counter()
        for group in optimizer.param_groups:  # linear warm-up, then constant
            group["lr"] = settings["lr"] * min(1.0, (state.step + 1) / settings["warmup_steps"])
        batch = collate(stream.batch(state.step, batch_size), pad_id)
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"pre-training diverged at step {state.step + 1} (loss {value}); try a lower lr")
        state.advance(value, int(batch["attention_mask"].sum()), time.perf_counter() - began)
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(state.losses[-50:]):.3f}")
        if state.step in snapshot_at:
            save(snapshot_at[state.step])
        if state.step < steps and time.perf_counter() - last_save >= SAVE_EVERY_S:
            state.save(model, optimizer)
            last_save = time.perf_counter()
        kill_point("pretrain step")
    bar.close()


def _build_info(model, state: build_state.BuildState, settings: dict, corpus: dict) -> dict:
    losses = state.losses
    window = max(1, min(50, len(losses) // 4))
    return {
        "settings": settings,
        "command": build_command(settings),
        "architecture": {key: settings[key] for key in ARCHITECTURE_KEYS},
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": state.step,
        "input_tokens": state.tokens,
        "loss_start": float(np.mean(losses[:window])),
        "loss_end": float(np.mean(losses[-window:])),
        "loss_curve": _curve(losses),
        "corpus": corpus,
        "time_s": {
            "tokenizer": round(state.tokenizer_s, 2),
            "pretrain": round(state.train_s, 2),
            "per_step": round(state.train_s / max(1, state.step), 4),
            "total": round(state.tokenizer_s + state.train_s, 2),
        },
        "resumed": state.resumed,
        "threads": torch.get_num_threads(),
        "versions": versions(),
    }


def build_command(settings: dict) -> str:
    """The command that rebuilds a base with these settings (from a corpus at data/corpus)."""
    default = SIZES[settings["size"]]["steps"]
    steps = "" if settings["steps"] == default else f" --steps {settings['steps']}"
    return (
        f"hybridcl base build --corpus data/corpus --out OUT --size {settings['size']}{steps} --seed {settings['seed']}"
    )


def _tokenizer_texts(records: Sequence[Record]) -> Iterable[str]:
    for record in records:
        yield record.code
        yield record.docstring


def _curve(losses: Sequence[float], points: int = 20) -> list[dict]:
    """Mean loss over `points` consecutive equal slices of the run."""
    edges = np.linspace(0, len(losses), min(points, len(losses)) + 1).astype(int)
    return [
        {"steps": [int(a) + 1, int(b)], "loss": round(float(np.mean(losses[a:b])), 4)}
        for a, b in zip(edges[:-1], edges[1:])
    ]


def _check_out_dir(out_dir: Path) -> None:
    """`out_dir` must be absent, empty, or an earlier stand-in base (which is replaced)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise DataError(f"--out {out_dir} is a file")
        if any(out_dir.iterdir()) and not (out_dir / BUILD_INFO).is_file():
            raise DataError(f"--out {out_dir} is a non-empty directory that is not a stand-in base; choose another")


def _save(model, tokenizer, info: dict, out_dir: Path) -> None:
    """save_pretrained (dropout 0.1, as codet5-small) into a temporary sibling of `out_dir` with the build
    record and every file's sha256, then swap it into place."""

    def write(staging: Path) -> None:
        model.config.dropout_rate = 0.1
        try:
            model.save_pretrained(staging)
        finally:
            model.config.dropout_rate = 0.0
        tokenizer.backend_tokenizer.no_truncation()  # encoding leaves its last cap set; not part of the tokenizer
        tokenizer.save_pretrained(staging)
        info["files"] = {path.name: file_sha256(path) for path in sorted(staging.iterdir())}
        (staging / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")

    build_state.replace_folder(out_dir, write)
