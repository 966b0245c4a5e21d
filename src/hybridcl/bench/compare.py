"""hybridcl's training stage and evaluation vs `Seq2SeqTrainer`, in one process, on the same workload.

    python benchmarks/bench.py [--shape tiny|codet5-small] [--device cpu|cuda] [--n-train N] [--n-eval N]
                               [--scaling 1000 2000 4000 8000] [--precision auto|fp32|bf16] [--set key=value ...]

The workload is task_specific's first stage: the base frozen, a fresh LoRA (r16/α32 on q,v) and a
fresh full encoder layer trained on the first language, with the seed's hyper-parameters (2 epochs,
batch 8, lr 5e-4, source/target capped at 256 tokens) unless overridden with --set. Both sides start
from bit-identical models, in the same precision (train.mixed_precision, or --precision). Shapes:

- tiny: the offline stand-in base (models/stand-in-base, shipped), pre-trained weights;
- codet5-small: Salesforce/codet5-small's architecture with random weights and the stand-in's
  tokenizer, so it runs offline (`--set model.tokenizer=Salesforce/codet5-small` for the real one).

Measured side by side: (1) one training stage, (2) greedy generation + the same metrics on the same
examples with the model (1) trained, (3) the training stage at each --scaling size. Printed as a
table whose last line is `train_speedup=<x> eval_speedup=<y>`; the full figures with machine,
versions and date go to benchmarks/results/<date>-<device>.json.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from hybridcl import versions
from hybridcl.atomic import write_text
from hybridcl.bench.hf_trainer import predict_with_trainer, train_with_trainer
from hybridcl.config import Config, load_config
from hybridcl.data.batching import EncodedSet, encode_records, source_target_texts
from hybridcl.data.csn import load_task_data
from hybridcl.evaluate import generate_outputs
from hybridcl.metrics import score_predictions
from hybridcl.model.base import load_base
from hybridcl.model.families import base_kind
from hybridcl.model.hybrid import HybridModel
from hybridcl.offline_assets import build_offline_assets
from hybridcl.settings import ConfigError, TrainConfig
from hybridcl.strategies import get_strategy
from hybridcl.train import (
    make_accelerator,
    peak_memory,
    prepare_stage,
    reset_peak_memory,
    resolve_mixed_precision,
    stage_loader,
    train_stage,
)

STAND_IN = "models/stand-in-base"
SHAPES = {
    "tiny": [f"model.name={STAND_IN}"],
    "codet5-small": ["model.name=Salesforce/codet5-small", "model.random_init=true", f"model.tokenizer={STAND_IN}"],
}
BENCH_DEFAULTS = ["name=bench", "data.source=data/corpus", "offline.build=true", "strategies=[task_specific]"]
PRECISIONS = {"auto": "auto", "fp32": "no", "bf16": "bf16"}  # --precision: train.mixed_precision's value


@dataclasses.dataclass
class Workload:
    cfg: Config
    device: torch.device
    base: torch.nn.Module
    tokenizer: object
    train: EncodedSet  # the largest size needed; smaller runs take a prefix (a random sample too)
    eval_records: list
    eval_set: EncodedSet

    @property
    def task(self) -> str:
        return self.cfg.data.languages[0]

    @property
    def target_language(self) -> str | None:
        """The references' language for the metrics: the task's for code targets, None for docstrings."""
        return self.task if self.cfg.data.direction == "generate" else None

    def train_prefix(self, n: int) -> EncodedSet:
        if n > len(self.train):
            raise ConfigError(f"{n} training examples asked for, {len(self.train)} available in {self.cfg.data.source}")
        return head(self.train, n)

    def precision(self, generation: bool = False) -> str:
        """What both sides train (or generate) in: train.mixed_precision resolved on the workload's device."""
        return resolve_mixed_precision(self.cfg.train.mixed_precision, self.device.type, generation)

    def with_precision(self, mixed_precision: str) -> Workload:
        train = dataclasses.replace(self.cfg.train, mixed_precision=mixed_precision)
        return dataclasses.replace(self, cfg=dataclasses.replace(self.cfg, train=train))

    def fresh_model(self) -> HybridModel:
        """task_specific's stage 1 ready to train: the same seeded components on every call."""
        model = HybridModel(copy.deepcopy(self.base), self.cfg.lora, self.cfg.layer).to(self.device)
        prepare_stage(model, get_strategy("task_specific"), (self.task,), 1, self.cfg.train.seed)
        return model


def head(encoded: EncodedSet, n: int) -> EncodedSet:
    """The first n examples."""
    return EncodedSet(_prefix(encoded.source_ids, n), _prefix(encoded.target_ids, n))


def _prefix(ragged, n: int):
    return dataclasses.replace(ragged, offsets=ragged.offsets[: n + 1], flat=ragged.flat[: ragged.offsets[n]])


def bench_config(shape: str, n_train: int, n_eval: int, overrides: list[str] = ()) -> Config:
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; choose from {list(SHAPES)}")
    sizes = [f"data.n_train={n_train}", f"data.n_valid={n_eval}"]
    return load_config(None, [*BENCH_DEFAULTS, *SHAPES[shape], *sizes, *overrides])


def load_workload(cfg: Config, device: torch.device) -> Workload:
    if cfg.offline.build:
        build_offline_assets(cfg)
    base, tokenizer = load_base(cfg.model)
    data = load_task_data(cfg.data, cfg.data.languages[0])
    encode = lambda records: encode_records(  # noqa: E731
        records,
        tokenizer,
        direction=cfg.data.direction,
        task_prefix=cfg.data.task_prefix,
        cache_dir=cfg.data.cache_dir,
        max_source_tokens=cfg.data.max_source_tokens,
        max_target_tokens=cfg.data.max_target_tokens,
    )
    return Workload(cfg, device, base, tokenizer, encode(data.train), data.valid, encode(data.valid))


# ------------------------------------------------------------------------------------- training


class ExampleCounter:
    """Counts the examples and non-padding source tokens that go through the encoder in training mode.

    Hooked on the T5 encoder, the one module both sides call through `__call__` with the batch.
    """

    def __init__(self, model: HybridModel):
        self.examples = 0
        self.source_tokens = 0
        self._handle = model.base.encoder.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs) -> None:
        if module.training:
            mask = kwargs["attention_mask"]
            self.examples += mask.shape[0]
            self.source_tokens += int(mask.sum())

    def close(self) -> None:
        self._handle.remove()


def train_side(
    workload: Workload, side: str, encoded: EncodedSet, train: TrainConfig | None = None
) -> tuple[dict, HybridModel]:
    """One training stage on `encoded` with hybridcl's loop or Seq2SeqTrainer; figures and the trained model."""
    model = workload.fresh_model()
    counter = ExampleCounter(model)
    train = dataclasses.replace(train or workload.cfg.train, mixed_precision=workload.precision())
    trainable = sum(p.numel() for p in model.trainable_parameters())
    reset_peak_memory(workload.device)
    if side == "hybridcl":
        start = time.perf_counter()  # set-up included, as on the trainer's side
        accelerator = make_accelerator(train, cpu=workload.device.type == "cpu")
        kind = base_kind(model.config)
        loader = stage_loader(encoded, workload.tokenizer.pad_token_id, train, accelerator, kind=kind)
        stats = train_stage(model, loader, train, accelerator, desc="hybridcl train")
        figures = {"wall_time_s": time.perf_counter() - start, "steps": stats.steps}
    else:
        figures = train_with_trainer(model.peft, workload.tokenizer, encoded, train, device=workload.device.type)
    counter.close()
    _, figures["peak_memory_bytes"] = peak_memory(workload.device)
    target_tokens = int(encoded.target_ids.lengths.sum()) * train.epochs
    figures.update(
        examples=counter.examples,
        source_tokens=counter.source_tokens,
        trainable_params=trainable,
        examples_per_s=counter.examples / figures["wall_time_s"],
        target_tokens_per_s=target_tokens / figures["wall_time_s"],
    )
    model.freeze()
    return figures, model


# ----------------------------------------------------------------------------------- evaluation


def generate_side(workload: Workload, side: str, model: HybridModel) -> list[str]:
    """Greedy predictions of the evaluation examples, both sides at the workload's generation precision
    (hybridcl's `generate_outputs` applies it; the trainer's `predict` runs under the same autocast)."""
    cfg, device = workload.cfg, workload.device
    precision = workload.precision(generation=True)
    if side == "hybridcl":
        predictions, _, _ = generate_outputs(
            model, workload.eval_set, workload.tokenizer, cfg.eval, device, "hybridcl eval", precision
        )
        return predictions
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    with torch.autocast(device.type, dtype=dtype, enabled=precision != "no"):
        train = dataclasses.replace(cfg.train, mixed_precision=precision)
        return predict_with_trainer(
            model.peft, workload.tokenizer, workload.eval_set, train, cfg.eval, device=device.type
        )


def eval_side(workload: Workload, side: str, model: HybridModel) -> tuple[dict, list[str]]:
    """Greedy generation of the evaluation examples + the metrics; figures and the predictions."""
    cfg = workload.cfg
    _, references = source_target_texts(workload.eval_records, cfg.data.direction)
    reset_peak_memory(workload.device)
    start = time.perf_counter()
    predictions = generate_side(workload, side, model)
    generation_s = time.perf_counter() - start
    scores = score_predictions(predictions, references, workload.target_language)
    wall = time.perf_counter() - start
    _, peak = peak_memory(workload.device)
    return {
        "wall_time_s": wall,
        "generation_s": generation_s,
        "metrics_s": wall - generation_s,
        "examples_per_s": len(predictions) / wall,
        "peak_memory_bytes": peak,
        "scores": scores["corpus"],
    }, predictions


# ------------------------------------------------------------------------------------------ run

SIDES = ("Seq2SeqTrainer", "hybridcl")  # the baseline first: whatever warms up favours it


def warm_up(workload: Workload) -> None:
    """First calls pay one-off costs (thread pools, allocator, WordNet and grammar loading): not timed."""
    one_epoch = dataclasses.replace(workload.cfg.train, epochs=1)
    for side in SIDES:
        train_side(workload, side, workload.train_prefix(2 * one_epoch.batch_size), one_epoch)
    _, references = source_target_texts(workload.eval_records[:2], workload.cfg.data.direction)
    score_predictions(references, references, workload.target_language)


def run_benchmark(workload: Workload, n_train: int, scaling: list[int]) -> dict:
    warm_up(workload)
    result = {"train": {}, "eval": {}, "scaling": []}
    models = {}
    for side in SIDES:
        result["train"][side], models[side] = train_side(workload, side, workload.train_prefix(n_train))
    predictions = {}
    for side in SIDES:
        result["eval"][side], predictions[side] = eval_side(workload, side, models["hybridcl"])
    same = sum(a == b for a, b in zip(*predictions.values()))
    result["eval"]["identical_predictions"] = same / len(workload.eval_records)
    for n in scaling:
        row = {"n_train": n}
        for side in SIDES:
            row[side] = train_side(workload, side, workload.train_prefix(n))[0]
        result["scaling"].append(row)
    result["train_speedup"] = _speedup(result["train"])
    result["eval_speedup"] = _speedup(result["eval"])
    return result


def _speedup(pair: dict) -> float:
    return pair["Seq2SeqTrainer"]["wall_time_s"] / pair["hybridcl"]["wall_time_s"]


def table(result: dict, header: str) -> str:
    mb = lambda b: f"{b / 2**20:,.0f}"  # noqa: E731
    rows = [header, f"{'':28}{'hybridcl':>14}{'Seq2SeqTrainer':>16}{'ratio':>8}"]

    def add(label, part, key, fmt=lambda v: f"{v:,.2f}", higher_is_better=True):
        ours, theirs = result[part]["hybridcl"][key], result[part]["Seq2SeqTrainer"][key]
        ratio = ours / theirs if higher_is_better else theirs / ours
        rows.append(f"{label:28}{fmt(ours):>14}{fmt(theirs):>16}{ratio:>7.2f}x")

    add("train wall time (s)", "train", "wall_time_s", higher_is_better=False)
    add("train examples/s", "train", "examples_per_s")
    add("train target tokens/s", "train", "target_tokens_per_s", fmt=lambda v: f"{v:,.0f}")
    add("train peak memory (MiB)", "train", "peak_memory_bytes", fmt=mb, higher_is_better=False)
    add("eval wall time (s)", "eval", "wall_time_s", higher_is_better=False)
    add("  of which generation (s)", "eval", "generation_s", higher_is_better=False)
    add("eval examples/s", "eval", "examples_per_s")
    add("eval peak memory (MiB)", "eval", "peak_memory_bytes", fmt=mb, higher_is_better=False)
    rows.append(f"identical predictions: {result['eval']['identical_predictions']:.1%}")
    for row in result["scaling"]:
        ours, theirs = row["hybridcl"]["wall_time_s"], row["Seq2SeqTrainer"]["wall_time_s"]
        rows.append(
            f"scaling n_train={row['n_train']:<6} hybridcl {ours:8.1f} s   Seq2SeqTrainer {theirs:8.1f} s"
            f"   {theirs / ours:5.2f}x"
        )
    return "\n".join(rows)


def write_figures(
    path: Path, settings: dict, result: dict, started: datetime, device: torch.device, cfg: Config
) -> Path:
    """A bench's full figures, with what it ran on and with, as JSON at `path`."""
    report = {
        **settings,
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(device),
        "versions": versions(),
        "config": json.loads(json.dumps(cfg.to_dict())),
        **result,
    }
    write_text(path, json.dumps(report, indent=1) + "\n")
    return path


def machine(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device.type,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hybridcl bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=list(SHAPES), default="tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n-train", type=int, default=1000, help="training examples of the side-by-side stage")
    parser.add_argument("--n-eval", type=int, default=200, help="evaluation examples")
    parser.add_argument(
        "--scaling",
        type=int,
        nargs="*",
        default=[1000, 2000, 4000, 8000],
        help="training sizes of the scaling runs (none: skip them)",
    )
    parser.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help="both sides train and generate in it (default: train.mixed_precision, auto unless --set)",
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--out", default="benchmarks/results", help="folder of the JSON results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    workload = load_workload(
        bench_config(args.shape, max([args.n_train, *args.scaling]), args.n_eval, args.set), device
    )
    if args.precision:
        workload = workload.with_precision(PRECISIONS[args.precision])
    cfg = workload.cfg
    started = datetime.now(timezone.utc)
    result = run_benchmark(workload, args.n_train, args.scaling)
    header = (
        f"hybridcl vs Seq2SeqTrainer: {args.shape} shape on {device.type}, {workload.task}, "
        f"{args.n_train} train x {cfg.train.epochs} epochs / {len(workload.eval_records)} eval examples, "
        f"precision {workload.precision()} (generation {workload.precision(generation=True)}) on both sides"
    )
    settings = {
        "shape": args.shape,
        "n_train": args.n_train,
        "n_eval": len(workload.eval_records),
        "precision": {"train": workload.precision(), "generation": workload.precision(generation=True)},
    }
    path = write_figures(Path(args.out) / f"{started.date().isoformat()}-{device.type}-{args.shape}.json",
                         settings, result, started, device, cfg)  # fmt: skip
    print(table(result, header))
    print(f"full figures: {path}", flush=True)
    print(f"train_speedup={result['train_speedup']:.2f} eval_speedup={result['eval_speedup']:.2f}")
    return 0
