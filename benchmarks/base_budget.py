"""The stand-in base's budget curve: pre-training steps -> BLEU of one fine-tuned task_specific stage.

    python benchmarks/base_budget.py --steps 750,1500,3000 [--corpus data/corpus] [--size tiny]

Builds one base for the largest budget with snapshots at the others (`hybridcl base build --snapshots`:
the learning rate is constant after warm-up, so the snapshot at N steps is the base a build of N steps
gives), then runs `configs/local.yaml` with `strategies: [task_specific]` on each and reads, per task,
BLEU at stage 0 (the base alone) and right after the task's own stage, with the pass rate and the share
of distinct predictions there. Bases already built under --work are reused. Writes a JSON under
benchmarks/results/ and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import date
from pathlib import Path

from hybridcl.cli import main as hybridcl
from hybridcl.run_files import RESULTS_FILE

ROOT = Path(__file__).resolve().parents[1]


def build_bases(corpus: str, size: str, budgets: list[int], work: Path) -> dict[int, Path]:
    final = work / f"{size}-step{max(budgets)}"
    bases = {n: work / f"{final.name}-step{n}" for n in budgets if n != max(budgets)} | {max(budgets): final}
    if not all((path / "config.json").is_file() for path in bases.values()):
        snapshots = ",".join(str(n) for n in sorted(budgets)[:-1])
        hybridcl(
            ["base", "build", "--corpus", corpus, "--out", str(final), "--size", size, "--steps", str(max(budgets))]
            + (["--snapshots", snapshots] if snapshots else [])
        )
    return bases


def fine_tuned_scores(base: Path, out: Path) -> dict:
    hybridcl(
        [
            "run",
            str(ROOT / "configs" / "local.yaml"),
            "--out",
            str(out),
            "--set",
            f"model.name={base}",
            "--set",
            "strategies=[task_specific]",
        ]
    )
    results = json.loads((out / RESULTS_FILE).read_text())
    entry, tasks = results["strategies"]["task_specific"], results["tasks"]
    bleu, passed = entry["matrices"]["bleu"], entry["matrices"]["pass_rate"]
    distinct = entry["outputs"]["distinct_share"]
    return {
        task: {
            "stage0_bleu": bleu[0][i],
            "own_stage_bleu": bleu[i + 1][i],
            "own_stage_pass_rate": passed[i + 1][i],
            "own_stage_distinct": distinct[i + 1][i]["mean"],
        }
        for i, task in enumerate(tasks)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="750,1500,3000", help="pre-training budgets, in steps")
    parser.add_argument("--corpus", default="data/corpus")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--work", default="data/budget-curve", help="bases and runs go here")
    args = parser.parse_args()
    budgets = sorted(int(n) for n in args.steps.split(","))
    work = Path(args.work)
    rows = []
    for steps, base in build_bases(args.corpus, args.size, budgets, work).items():
        info = json.loads((base / "build_info.json").read_text())
        scores = fine_tuned_scores(base, work / f"run-step{steps}")
        rows.append(
            {
                "steps": steps,
                "input_tokens": info["input_tokens"],
                "loss_end": info["loss_end"],
                "pretrain_s": info["time_s"]["pretrain"],
                "scores": scores,
            }
        )
    print(f"{'steps':>6} {'tokens':>10} {'loss':>6} {'minutes':>7}  task        stage0 BLEU  own BLEU  pass  distinct")
    for row in rows:
        for task, s in row["scores"].items():
            print(
                f"{row['steps']:>6} {row['input_tokens']:>10,} {row['loss_end']:>6.3f} {row['pretrain_s'] / 60:>7.1f}  "
                f"{task:<11} {s['stage0_bleu']:>11.4f} {s['own_stage_bleu']:>9.4f} {s['own_stage_pass_rate']:>5.2f} "
                f"{s['own_stage_distinct']:>9.2f}"
            )
    record = {"date": date.today().isoformat(), "machine": platform.machine(), "size": args.size, "rows": rows}
    path = ROOT / "benchmarks" / "results" / f"{date.today().isoformat()}-base-budget.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {path}")


if __name__ == "__main__":
    main()
