"""bf16 against float32 on both sides of the bench: seconds per training step and per generation batch.

    python benchmarks/precision.py [--config configs/local.yaml] [--rounds 5] [--n-train 160]
                                   [--n-eval 100] [--device cpu|cuda] [--set key=value ...]

The workload is the bench's (hybridcl.bench.compare: task_specific's first stage on the config's first
language) at the config's sizes, the offline demo's by default (stand-in base, batch 8, 64 source / 128
target tokens, generation batch 50 and up to 128 new tokens; the trainer generates at its default
batch, 8). Each round trains each side on the first --n-train examples (one epoch) and generates the
--n-eval examples with one model (hybridcl's, trained in float32 before the rounds), once in float32
and once in bf16: accelerate's mixed precision for hybridcl, `Seq2SeqTrainingArguments(bf16=True)` for
the trainer; autocast in `generate_outputs` and around the trainer's `predict`. The order alternates (fp32 first, then bf16 first)
so that other load on the machine hits both precisions alike.

A step's time is the gap between two consecutive optimizer steps (set-up and the first step excluded);
a batch's, the gap from its `generate` call to the next batch's (or to the end of the generation: the
trainer's `predict` also runs a loss forward per batch, counted in). Both on two clocks: wall time, and the
CPU time of the process's threads, which other load on the machine disturbs less. Printed:
the median over every round and the range of the rounds' medians; speedup = fp32 median / bf16 median,
with the range of the rounds' ratios. The figures of every step and batch go to
benchmarks/results/<date>-<device>-precision.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from hybridcl.bench.compare import SIDES, Workload, generate_side, head, load_workload, train_side, write_figures
from hybridcl.config import load_config

PRECISIONS = {"fp32": "no", "bf16": "bf16"}  # the compared precisions, as train.mixed_precision values
CLOCKS = {"s": time.perf_counter, "cpu_s": time.process_time}  # wall time; CPU time of the process's threads
FIGURES = [f"{part}_{clock}" for part in ("train_step", "generation_batch") for clock in CLOCKS]


@contextlib.contextmanager
def gaps_between(register: Callable, until_exit: bool = False) -> Iterator[dict[str, list[float]]]:
    """Per clock, the times between consecutive calls of the hook that `register(hook)` installs, filled
    on exit; with `until_exit`, also from the last call to the exit."""
    marks: list[tuple[float, ...]] = []
    now = lambda *args: marks.append(tuple(clock() for clock in CLOCKS.values()))  # noqa: E731
    handle = register(now)
    gaps: dict[str, list[float]] = {}
    try:
        yield gaps
    finally:
        handle.remove()
        if until_exit and marks:
            now()
        for i, clock in enumerate(CLOCKS):
            gaps[clock] = [later[i] - earlier[i] for earlier, later in zip(marks, marks[1:])]


def calls_of(obj, name: str) -> Callable:
    """A `register` for gaps_between: the hook runs at the start of each call of `obj.<name>` (an
    instance attribute wraps the method until the handle is removed)."""

    def register(hook: Callable) -> SimpleNamespace:
        method = getattr(obj, name)

        def marked(*args, **kwargs):
            hook()
            return method(*args, **kwargs)

        setattr(obj, name, marked)
        return SimpleNamespace(remove=lambda: delattr(obj, name))

    return register


def one_round(workload: Workload, side: str, n_train: int, model) -> tuple[dict, list[str]]:
    """Train `side` on n_train examples for one epoch, then generate with `model`: the step and batch
    times (FIGURES) and the predictions."""
    one_epoch = dataclasses.replace(workload.cfg.train, epochs=1)
    with gaps_between(register_optimizer_step_post_hook) as steps:
        train_side(workload, side, workload.train_prefix(n_train), one_epoch)
    with gaps_between(calls_of(model.base, "generate"), until_exit=True) as batches:
        predictions = generate_side(workload, side, model)
    times = {f"train_step_{clock}": gaps for clock, gaps in steps.items()}
    times.update({f"generation_batch_{clock}": gaps for clock, gaps in batches.items()})
    return times, predictions


def warm_up(workloads: dict[str, Workload], model) -> None:
    """Each precision's first calls pay one-off costs (its kernels, the trainer's imports): not timed."""
    for workload in workloads.values():
        short = dataclasses.replace(workload, eval_set=head(workload.eval_set, 2))
        for side in SIDES:
            one_round(short, side, 2 * workload.cfg.train.batch_size, model)


def run_rounds(workloads: dict[str, Workload], n_train: int, rounds: int) -> dict:
    """Every round's step and batch times per side and precision, and the share of predictions bf16 leaves
    identical (last round)."""
    _, model = train_side(workloads["fp32"], "hybridcl", workloads["fp32"].train_prefix(n_train))
    warm_up(workloads, model)
    times = {side: {name: {figure: [] for figure in FIGURES} for name in workloads} for side in SIDES}
    predictions = {side: {} for side in SIDES}
    for index in range(rounds):
        order = list(workloads) if index % 2 == 0 else list(reversed(workloads))
        for name in order:
            for side in SIDES:
                measured, predictions[side][name] = one_round(workloads[name], side, n_train, model)
                for figure, values in measured.items():
                    times[side][name][figure].append(values)
    identical = {
        side: sum(a == b for a, b in zip(by["fp32"], by["bf16"])) / len(by["fp32"]) for side, by in predictions.items()
    }
    return {"times": times, "identical_predictions": identical}


def summarize(per_round: list[list[float]]) -> dict:
    """The median of all the values, and each round's median."""
    return {
        "median": statistics.median(v for values in per_round for v in values),
        "round_medians": [statistics.median(values) for values in per_round],
    }


def speedup(fp32: dict, bf16: dict) -> dict:
    ratios = [a / b for a, b in zip(fp32["round_medians"], bf16["round_medians"])]
    return {"median": fp32["median"] / bf16["median"], "round_ratios": ratios}


def summary(times: dict) -> dict:
    result = {}
    for side, by_precision in times.items():
        figures = {name: {key: summarize(v) for key, v in parts.items()} for name, parts in by_precision.items()}
        figures["speedup"] = {key: speedup(figures["fp32"][key], figures["bf16"][key]) for key in FIGURES}
        result[side] = figures
    return result


def table(result: dict, header: str) -> str:
    def cell(figure: dict, unit: str = "") -> str:
        spread = figure.get("round_medians") or figure["round_ratios"]
        return f"{figure['median']:.3f}{unit} ({min(spread):.2f}-{max(spread):.2f})"

    titles = ["train s/step", "train CPU s/step", "generation s/batch", "generation CPU s/batch"]
    rows = [header, f"{'':24}" + "".join(f"{title:>24}" for title in titles)]
    for side, figures in result["summary"].items():
        for name in PRECISIONS:
            rows.append(f"{side:16}{name:8}" + "".join(f"{cell(figures[name][key]):>24}" for key in FIGURES))
        gains = "".join(f"{cell(figures['speedup'][key], 'x'):>24}" for key in FIGURES)
        rows.append(f"{'  speedup bf16/fp32':24}{gains}")
    identical = ", ".join(f"{side} {share:.1%}" for side, share in result["identical_predictions"].items())
    rows.append(f"predictions identical in bf16 and fp32: {identical}")
    rows.append("median over all rounds (in brackets: the range of the rounds' medians, or of their ratios)")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/precision.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/local.yaml", help="the sizes (default: the offline demo's)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of fp32 and bf16 runs, alternating")
    parser.add_argument("--n-train", type=int, default=160, help="training examples of each run (one epoch)")
    parser.add_argument("--n-eval", type=int, default=100, help="examples generated in each run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    parser.add_argument("--out", default="benchmarks/results", help="folder of the JSON results")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    sizes = [f"data.n_train={args.n_train}", f"data.n_valid={args.n_eval}", "strategies=[task_specific]"]
    cfg = load_config(args.config, [*args.set, *sizes])
    workload = load_workload(cfg, device)
    workloads = {name: workload.with_precision(value) for name, value in PRECISIONS.items()}
    started = datetime.now(timezone.utc)
    result = run_rounds(workloads, args.n_train, args.rounds)
    result["summary"] = summary(result["times"])
    header = (
        f"bf16 vs fp32: {cfg.model.name} on {device.type} ({torch.get_num_threads()} torch threads), "
        f"{workload.task}; per round {args.n_train} train examples at batch {cfg.train.batch_size}, "
        f"{len(workload.eval_set)} generated (hybridcl batch {cfg.eval.batch_size}, Seq2SeqTrainer 8, "
        f"<= {cfg.eval.max_new_tokens} new tokens); {args.rounds} rounds"
    )
    settings = {
        "config_file": args.config,
        "rounds": args.rounds,
        "n_train": args.n_train,
        "n_eval": len(workload.eval_set),
    }
    path = write_figures(Path(args.out) / f"{started.date().isoformat()}-{device.type}-precision.json",
                         settings, result, started, device, cfg)  # fmt: skip
    print(table(result, header))
    print(f"full figures: {path}", flush=True)
    return 0
