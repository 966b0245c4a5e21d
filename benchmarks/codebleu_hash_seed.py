"""How far CodeBLEU moves with the string-hash seed: a run's prediction sets rescored under several
PYTHONHASHSEED values.

    python benchmarks/codebleu_hash_seed.py PATH... [--hash-seeds 20]

codebleu 0.7.0 builds variable lists from sets of strings, so its dataflow part, and CodeBLEU with it,
depends on the interpreter's hash seed (hybridcl.metrics.codebleu). Each hash seed 0..N-1 scores, in a
fresh interpreter, every `predictions/<task>.jsonl` given or under a folder given (a run's, a stage
folder's) with the runner's own call
(`corpus_codebleu`). Prints per set the spread (largest - smallest) of CodeBLEU and of its dataflow
part across the hash seeds, and whether hash seed 0 gives the figure the run recorded (`hybridcl run`
pins PYTHONHASHSEED=0). Writes the figures to benchmarks/results/<date>-codebleu-hash-seed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import date
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def score(paths: list[str]) -> dict[str, dict[str, float]]:
    """CodeBLEU and its dataflow part of each predictions file, in this interpreter."""
    from hybridcl.metrics.codebleu import corpus_codebleu

    figures = {}
    for path in paths:
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
        predictions, references = [r["prediction"] for r in rows], [r["reference"] for r in rows]
        components, _ = corpus_codebleu(predictions, references, Path(path).stem)
        figures[path] = {"codebleu": components["codebleu"], "dataflow": components["dataflow_match_score"]}
    return figures


def score_with_hash_seed(paths: list[str], hash_seed: int) -> dict[str, dict[str, float]]:
    env = os.environ | {"PYTHONHASHSEED": str(hash_seed)}
    done = subprocess.run(
        [sys.executable, __file__, "--score", *paths], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout)


def recorded_codebleu(path: Path) -> float | None:
    """The CodeBLEU the run wrote for this predictions file (its stage folder's stage.json)."""
    stage = json.loads((path.parent.parent / "stage.json").read_text(encoding="utf-8"))
    return stage["eval"][path.stem]["scores"]["codebleu"]


def prediction_files(given: list[Path]) -> list[str]:
    found = [p for path in given for p in ([path] if path.is_file() else sorted(path.rglob("predictions/*.jsonl")))]
    return [str(p.resolve()) for p in found]


def spreads(paths: list[str], hash_seeds: int) -> list[dict]:
    """Per predictions file (named from the folder all of them share): its CodeBLEU under each hash seed."""
    per_seed = [score_with_hash_seed(paths, k) for k in range(hash_seeds)]
    root = Path(os.path.commonpath([str(Path(path).parent) for path in paths]))
    rows = []
    for path in paths:
        codebleus = [seed[path]["codebleu"] for seed in per_seed]
        dataflows = [seed[path]["dataflow"] for seed in per_seed]
        rows.append({
            "predictions": str(Path(path).relative_to(root)),
            "codebleu": codebleus,
            "codebleu_spread": max(codebleus) - min(codebleus),
            "dataflow_spread": max(dataflows) - min(dataflows),
            "hash_seed_0_matches_the_run": codebleus[0] == recorded_codebleu(Path(path)),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="predictions files, or folders to search for them")
    parser.add_argument("--hash-seeds", type=int, default=20, help="PYTHONHASHSEED 0..N-1 (default 20)")
    parser.add_argument("--score", nargs="+", help=argparse.SUPPRESS)  # the worker: score these files
    args = parser.parse_args()
    if args.score:
        print(json.dumps(score(args.score)))
        return
    paths = prediction_files(args.paths)
    if not paths:
        parser.error("no predictions/<task>.jsonl in the paths given")
    rows = spreads(paths, args.hash_seeds)
    for row in rows:
        print(f"{row['predictions']}: CodeBLEU spread {row['codebleu_spread']:.2e}  "
              f"dataflow spread {row['dataflow_spread']:.2e}  seed 0 = run: {row['hash_seed_0_matches_the_run']}")  # fmt: skip
    largest = max(rows, key=lambda row: row["codebleu_spread"])
    print(f"largest CodeBLEU spread over PYTHONHASHSEED 0..{args.hash_seeds - 1}: "
          f"{largest['codebleu_spread']:.2e} ({largest['predictions']})")  # fmt: skip
    out = ROOT / "benchmarks" / "results" / f"{date.today().isoformat()}-codebleu-hash-seed.json"
    summary = {
        "hash_seeds": list(range(args.hash_seeds)),
        "versions": {"python": platform.python_version(), "codebleu": version("codebleu")},
        "sets": rows,
    }
    out.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
