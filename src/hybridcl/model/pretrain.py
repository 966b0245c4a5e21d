"""The offline stand-in base: a byte-level BPE tokenizer + a small T5 pre-trained the way CodeT5 was
(or, with `--arch causal`, a small Llama: model.pretrain_causal holds what differs; the build is this one).

`hybridcl base build --corpus DIR --out DIR [--arch t5] [--size tiny] [--steps N]` calls `build_stand_in_base`, which
1. trains a byte-level BPE tokenizer (model.stand_in_tokenizer: CodeT5's special tokens) on the `pretrain`
   pool of every language in the corpus (`DIR/<language>/pretrain.jsonl.gz`: packages no task trains or
   evaluates on), code and docstrings;
2. pre-trains a small T5 on three objectives, as CodeT5 (Wang et al., 2021) combines them. Every pretrain
   record whose code has at most `max_code_chars` characters gives one example of each per epoch:
   - span corruption (model.span_corruption: T5's, noise density 0.15, mean span 3, one sentinel per span)
     of its docstring and code;
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
stream (model.pretrain_data) is a pure function of the seed and `g`, so no data iterator has to be saved.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from hybridcl import versions
from hybridcl.data.schema import DataError, Record
from hybridcl.faults import kill_point
from hybridcl.fingerprints import file_sha256
from hybridcl.logs import BUILD_LOG
from hybridcl.model import build_state, pretrain_causal
from hybridcl.model.pretrain_data import (
    OBJECTIVES,
    PretrainingStream,
    SeededStream,
    collate,
    corpus_fingerprint,
    pretraining_records,
)
from hybridcl.model.span_corruption import MEAN_SPAN_LENGTH, NOISE_DENSITY
from hybridcl.model.stand_in_tokenizer import train_tokenizer, wrap_tokenizer
from hybridcl.progress import Progress

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

logger = logging.getLogger(__name__)


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


def _t5_model(config):
    from transformers import T5ForConditionalGeneration

    return T5ForConditionalGeneration(config)


def _adafactor(model, settings: dict):
    from transformers.optimization import Adafactor

    # Adafactor scales each update by its parameter's RMS: T5's tied embedding starts at std 1 while the
    # other weights have std ~d_model**-0.5, so AdamW's one absolute step trains the embedding ~16x too slowly.
    return Adafactor(
        model.parameters(), lr=settings["lr"], scale_parameter=True, relative_step=False, warmup_init=False
    )


@dataclass(frozen=True)
class Architecture:
    """What a stand-in architecture brings to the shared build (tokenizer, stream, training loop, saving)."""

    sizes: dict[str, dict]
    architecture_keys: tuple[str, ...]  # the settings that shape the network (build_info.json's "architecture")
    settings: dict  # what else its result depends on, recorded with the size's settings
    config: Callable  # (size, vocab size) -> the transformers config it pre-trains with (dropout 0)
    new_model: Callable  # config -> a freshly initialised model
    optimizer: Callable  # (model, settings) -> its optimizer
    stream: type[SeededStream]
    collate: Callable  # (examples, pad id) -> a batch for model(**batch)
    saved_config: dict  # the config values the saved base carries instead (fine-tuning's)
    causal_tokenizer: bool  # the tokenizer's special-token convention (model.stand_in_tokenizer)


ARCHITECTURES = {
    "t5": Architecture(
        sizes=SIZES,
        architecture_keys=ARCHITECTURE_KEYS,
        settings=dict(objectives=list(OBJECTIVES), noise_density=NOISE_DENSITY, mean_span_length=MEAN_SPAN_LENGTH),
        config=lambda size, vocab_size: stand_in_config(size, vocab_size, dropout_rate=0.0),
        new_model=_t5_model,
        optimizer=_adafactor,
        stream=PretrainingStream,
        collate=collate,
        saved_config={"dropout_rate": 0.1},
        causal_tokenizer=False,
    ),
    "causal": Architecture(
        sizes=pretrain_causal.SIZES,
        architecture_keys=pretrain_causal.ARCHITECTURE_KEYS,
        settings=pretrain_causal.build_settings(),
        config=pretrain_causal.stand_in_config,
        new_model=pretrain_causal.new_model,
        optimizer=pretrain_causal.optimizer,
        stream=pretrain_causal.CausalPretrainingStream,
        collate=pretrain_causal.collate,
        saved_config={},
        causal_tokenizer=True,
    ),
}


def architecture_of(settings: dict) -> Architecture:
    """A build's architecture; a T5 build's settings do not name it (they predate the causal stand-in)."""
    return ARCHITECTURES[settings.get("arch", "t5")]


# ------------------------------------------------------------------------------------------ build


def build_settings(size: str, steps: int | None = None, seed: int = 0, arch: str = "t5") -> dict:
    """Everything a build's result depends on besides the corpus (recorded in build_info.json)."""
    if arch not in ARCHITECTURES:
        raise DataError(f"unknown stand-in architecture {arch!r}; choose from {list(ARCHITECTURES)}")
    sizes = ARCHITECTURES[arch].sizes
    if size not in sizes:
        raise DataError(f"unknown stand-in size {size!r}; choose from {list(sizes)}")
    settings = dict(sizes[size], size=size, seed=int(seed), **ARCHITECTURES[arch].settings)
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
    arch: str = "t5",
    snapshots: Sequence[int] = (),
    progress: bool = True,
) -> dict:
    """Build the stand-in base of architecture `arch` ("t5" or "causal") from `corpus_dir` into `out_dir`,
    continuing a killed build of the same settings; returns the build info (also in build_info.json).
    `snapshots`: steps at which a complete base is also saved, to `<out_dir>-step<N>` (the budget curve)."""
    settings = build_settings(size, steps, seed, arch)
    architecture = ARCHITECTURES[arch]
    out_dir = Path(out_dir)
    check_out_dir(out_dir)
    skips: Counter = Counter()
    records = pretraining_records(corpus_dir, settings["max_code_chars"], skips)
    corpus = {
        "path": str(Path(corpus_dir).resolve()),
        "fingerprint": corpus_fingerprint(corpus_dir),
        "records": dict(sorted(Counter(r.language for r in records).items())),
        "skipped": dict(sorted(skips.items())),
    }
    state = build_state.BuildState.open(out_dir, dict(settings, corpus=corpus["fingerprint"]), progress=progress)

    saved = state.saved_tokenizer()
    causal = architecture.causal_tokenizer
    tokenizer = wrap_tokenizer(saved, causal) if saved else _first_tokenizer(state, records, settings, causal, progress)
    stream = architecture.stream(records, tokenizer, settings, seed)
    model = _fresh_model(architecture, settings, len(tokenizer), seed)
    optimizer = architecture.optimizer(model, settings)
    state.restore(model, optimizer)

    def save(folder: Path) -> dict:
        info = _build_info(model, state, dict(settings, steps=state.step), corpus)
        _save(model, tokenizer, info, folder, architecture.saved_config)
        return info

    snapshot_at = {int(n): out_dir.with_name(f"{out_dir.name}-step{int(n)}") for n in snapshots}
    for folder in snapshot_at.values():
        check_out_dir(folder)

    def batch_at(step: int) -> dict[str, torch.Tensor]:
        return architecture.collate(stream.batch(step, settings["batch_size"]), tokenizer.pad_token_id)

    _train(model, optimizer, batch_at, state, settings, snapshot_at, save, progress)
    info = save(out_dir)
    state.remove()
    return info


def _first_tokenizer(
    state: build_state.BuildState, records: Sequence[Record], settings: dict, causal: bool, progress: bool
):
    if progress:
        logger.info(f"training a {settings['vocab_size']:,}-token BPE tokenizer on {len(records):,} records ...")
    began = time.perf_counter()
    tokenizer = train_tokenizer(_tokenizer_texts(records), vocab_size=settings["vocab_size"], causal=causal)
    state.save_tokenizer(tokenizer.backend_tokenizer.to_str(), time.perf_counter() - began)
    return tokenizer


def _fresh_model(architecture: Architecture, settings: dict, vocab_size: int, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return architecture.new_model(architecture.config(settings["size"], vocab_size)).train()


def _train(
    model,
    optimizer,
    batch_at: Callable[[int], dict[str, torch.Tensor]],
    state: build_state.BuildState,
    settings: dict,
    snapshot_at: dict[int, Path],
    save,
    progress: bool,
) -> None:
    steps = settings["steps"]
    desc = f"pre-training {settings['size']} stand-in"
    last_save = time.perf_counter()
    with Progress(steps, desc, "step", enabled=progress, initial=state.step) as bar:
        while state.step < steps:
            began = time.perf_counter()
            lr = settings["lr"] * min(1.0, (state.step + 1) / settings["warmup_steps"])  # linear warm-up, then constant
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = batch_at(state.step)
            loss = model(**batch).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RuntimeError(f"pre-training diverged at step {state.step + 1} (loss {value}); try a lower lr")
            seconds = time.perf_counter() - began
            state.advance(value, int(batch["attention_mask"].sum()), seconds)
            logger.debug("%s step %d/%d: loss %.4f, lr %.3g, %.3f s", desc, state.step, steps, value, lr, seconds)
            bar.note(f"loss {np.mean(state.losses[-50:]):.3f}")
            bar.update(1)
            if state.step in snapshot_at:
                save(snapshot_at[state.step])
            if state.step < steps and time.perf_counter() - last_save >= SAVE_EVERY_S:
                state.save(model, optimizer)
                last_save = time.perf_counter()
            kill_point("pretrain step")


def _build_info(model, state: build_state.BuildState, settings: dict, corpus: dict) -> dict:
    losses = state.losses
    window = max(1, min(50, len(losses) // 4))
    return {
        "settings": settings,
        "command": build_command(settings),
        "architecture": {key: settings[key] for key in architecture_of(settings).architecture_keys},
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
    default = architecture_of(settings).sizes[settings["size"]]["steps"]
    steps = "" if settings["steps"] == default else f" --steps {settings['steps']}"
    arch = f" --arch {settings['arch']}" if "arch" in settings else ""
    return (
        f"hybridcl base build{arch} --corpus data/corpus --out OUT --size {settings['size']}{steps} "
        f"--seed {settings['seed']}"
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


def check_out_dir(out_dir: Path) -> None:
    """`out_dir` must be absent, empty (but for the build's log), or an earlier stand-in base (which is replaced)."""
    if out_dir.exists():
        if not out_dir.is_dir():
            raise DataError(f"--out {out_dir} is a file")
        if any(path.name != BUILD_LOG for path in out_dir.iterdir()) and not (out_dir / BUILD_INFO).is_file():
            raise DataError(f"--out {out_dir} is a non-empty directory that is not a stand-in base; choose another")


def _save(model, tokenizer, info: dict, out_dir: Path, saved_config: dict) -> None:
    """save_pretrained (with `saved_config`'s values: T5's dropout 0.1, as codet5-small) into a temporary
    sibling of `out_dir` with the build record and every file's sha256, then swap it into place."""

    def write(staging: Path) -> None:
        training = {key: getattr(model.config, key) for key in saved_config}
        for key, value in saved_config.items():
            setattr(model.config, key, value)
        try:
            model.save_pretrained(staging)
        finally:
            for key, value in training.items():
                setattr(model.config, key, value)
        tokenizer.backend_tokenizer.no_truncation()  # encoding leaves its last cap set; not part of the tokenizer
        tokenizer.save_pretrained(staging)
        info["files"] = {path.name: file_sha256(path) for path in sorted(staging.iterdir())}
        (staging / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")

    build_state.replace_folder(out_dir, write, keep=(BUILD_LOG,))
