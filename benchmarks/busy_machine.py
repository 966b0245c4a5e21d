"""Training-step time of the tiny stand-in on 2 cores, quiet and beside one busy process, per OpenMP setting.

    python benchmarks/busy_machine.py [--steps 40]

Each measurement is a fresh process (OpenMP reads its environment once, at start): task_specific's
first stage on python (the offline default's data and sizes, batch 8) for --steps steps, timed after two
warm-up steps. "busy" runs one CPU-bound competitor process (a Python loop) alongside. Settings: torch's
defaults; OMP_WAIT_POLICY=PASSIVE (waiting threads sleep at once); GOMP_SPINCOUNT (how long libgomp's
waiting threads spin before they sleep; 300,000 by default; `hybridcl` sets 1,000); one intra-op thread.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time

SETTINGS = {
    "default": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
    "GOMP_SPINCOUNT=1000": {"GOMP_SPINCOUNT": "1000"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}


def measure(steps: int) -> float:
    """Seconds per training step, in this process."""
    import torch

    from hybridcl.bench.compare import bench_config, load_workload, train_side

    cfg = bench_config(
        "tiny",
        n_train=8 * steps,
        n_eval=8,
        overrides=["train.epochs=1", "data.max_source_tokens=64", "data.max_target_tokens=128"],
    )
    workload = load_workload(cfg, torch.device("cpu"))
    train_side(workload, "hybridcl", workload.train_prefix(16))  # warm-up: thread pools, allocator
    figures, _ = train_side(workload, "hybridcl", workload.train_prefix(8 * steps))
    return figures["wall_time_s"] / figures["steps"]


def spin(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        pass


def run(setting: dict, busy: bool, steps: int) -> float:
    competitor = None
    if busy:
        competitor = multiprocessing.Process(target=spin, args=(time.monotonic() + 600,), daemon=True)
        competitor.start()
    try:
        env = {**os.environ, **setting}
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(steps)], env=env, check=True, capture_output=True, text=True
        ).stdout
        return float(out.strip().splitlines()[-1])
    finally:
        if competitor is not None:
            competitor.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(measure(args.child))
        return
    results = {}
    for name, setting in SETTINGS.items():
        quiet, busy = run(setting, False, args.steps), run(setting, True, args.steps)
        results[name] = {
            "quiet_s_per_step": round(quiet, 4),
            "busy_s_per_step": round(busy, 4),
            "slowdown": round(busy / quiet, 2),
        }
        print(f"{name:<26} quiet {quiet:.3f} s/step   busy {busy:.3f} s/step   x{busy / quiet:.2f}", flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
