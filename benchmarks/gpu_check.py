"""One prepared check for a lent GPU machine: install, the seed protocol at codet5-small's shape, the
bench against Seq2SeqTrainer, and a 2,000-example evaluation's throughput, in one JSON.

    python benchmarks/gpu_check.py --prepare   # here (PyPI reachable): what the GPU image lacks, into .whl/
    python3 benchmarks/gpu_check.py            # there, with .whl/ carried: ~4 minutes on one H200 (estimated)
    python benchmarks/gpu_check.py --smoke     # the same steps on the CPU at tiny sizes (tests/test_gpu_check.py)

The GPU machine reaches no package registry. Its image holds torch, transformers, accelerate, peft,
sacrebleu, scipy, matplotlib and more (as listed for it, 2026-11), not nltk, codebleu, tree-sitter and
its grammars, datasets (for the Seq2SeqTrainer side) or WordNet: `--prepare` downloads those as cp312
manylinux wheels at this environment's versions and zips this environment's WordNet, all into .whl/
(git-ignored). The check installs the wheels with `pip --no-index --target`, puts src/ on the path
(no `pip install -e .`: its dependencies cannot resolve there) and records every pinned package's
version as found: torch stays the image's CUDA build.

Data: a synthetic corpus in CodeSearchNet's schema (python and javascript functions of 3 to 45 body
lines), written by the check itself: the mined corpus needs npm and a network, which that machine lacks.

The JSON is rewritten after every step, so a run stopped at its time limit keeps the steps it finished;
a step that fails records its error and the next one runs. It goes to $OUT/gpu-check.json when OUT is
set, else to benchmarks/results/<date>-gpu-check[-smoke].json, or to --out.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ROOT / ".whl"
STAND_IN = "models/stand-in-base"
SEED_CONFIG = "configs/seed-random-init.yaml"
# What hybridcl imports that the GPU image lacks, and what those need beyond the image.
CARRIED = (
    "nltk",
    "defusedxml",
    "codebleu",
    "tree-sitter",
    "tree-sitter-python",
    "tree-sitter-javascript",
    "tree-sitter-java",
    "tree-sitter-c-sharp",
    "datasets",
    "dill",
    "multiprocess",
)
WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


@dataclass(frozen=True)
class Plan:
    """The sizes of every step. GPU: estimated from the code's step counts, not measured (README)."""

    device: str
    shape: str  # the bench's and the 2K evaluation's model (hybridcl.bench.compare.SHAPES)
    corpus_train: int  # synthetic records per language and split
    corpus_valid: int
    seed_run: tuple[str, ...]  # overrides of configs/seed-random-init.yaml
    bench_train: int
    bench_eval: int
    eval_examples: int
    settings: tuple[str, ...] = ()  # overrides of the bench's and the evaluation's config


# The smoke sizes: short sequences, one epoch, a handful of examples.
TINY = (
    "data.max_source_tokens=48",
    "data.max_target_tokens=48",
    "eval.max_new_tokens=16",
    "eval.batch_size=8",
    "train.epochs=1",
)
GPU = Plan(
    device="cuda",
    shape="codet5-small",
    corpus_train=1000,
    corpus_valid=2000,
    # 250 optimizer steps per stage (1,000 examples x 2 epochs / batch 8); 500 valid: one batch of eval.batch_size
    seed_run=("data.n_train=1000", "data.n_valid=500"),
    bench_train=500,
    bench_eval=100,
    eval_examples=2000,
    settings=("eval.batch_size=1000",),  # seed-random-init's: the 2K evaluation in two batches
)
SMOKE = Plan(
    device="cpu",
    shape="tiny",
    corpus_train=24,
    corpus_valid=16,
    seed_run=("data.n_train=24", "data.n_valid=6", f"model.name={STAND_IN}", *TINY),
    bench_train=16,
    bench_eval=8,
    eval_examples=16,
    settings=TINY,
)


# ---------------------------------------------------------------------------------------- install


def prepare(wheels: Path = WHEELS) -> None:
    """Download the carried wheels (this environment's versions, for the GPU image's Python 3.12) and
    zip this environment's WordNet, into `wheels`."""
    pins = [f"{name}=={metadata.version(name)}" for name in CARRIED]
    platforms = [part for platform in WHEEL_PLATFORMS for part in ("--platform", platform)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
        + ["--implementation", "cp", *platforms, "-d", str(wheels), *pins],
        check=True,
    )
    import nltk

    wordnet = Path(nltk.data.find("corpora/wordnet").path)
    shutil.make_archive(str(wheels / "wordnet"), "zip", wordnet.parent, wordnet.name)
    size = sum(path.stat().st_size for path in wheels.rglob("*") if path.is_file())
    print(f"{wheels}: {len(pins)} wheels and WordNet, {size / 2**20:.1f} MiB; carry it with the repository")


def install(wheels: Path, site: Path) -> dict:
    """Install the carried wheels into `site` (first on the path), unpack WordNet there, and put src/ on
    the path when hybridcl is not installed: what was installed, and each pinned package's version as found."""
    carried = sorted(wheels.glob("*.whl"))
    if carried:
        pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
        subprocess.run([*pip, "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, carried)], check=True)
        sys.path.insert(0, str(site))
    if (wheels / "wordnet.zip").is_file():  # unpacked: NLTK's check for WordNet finds no zipped copy
        shutil.unpack_archive(wheels / "wordnet.zip", site / "nltk_data" / "corpora")
        os.environ["NLTK_DATA"] = str(site / "nltk_data")  # read when nltk loads, which is later
    if importlib.util.find_spec("hybridcl") is None:
        sys.path.insert(0, str(ROOT / "src"))
    importlib.invalidate_caches()
    import hybridcl

    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "wheels": [path.name for path in carried],
        "nltk_data": os.environ.get("NLTK_DATA"),
        "hybridcl_from": str(Path(hybridcl.__file__).parent),
        "packages": pinned_versions(),
    }


def pinned_versions() -> dict[str, dict]:
    """Every dependency pyproject.toml pins, with the version this interpreter finds (None: missing)."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    versions = {}
    for requirement in dependencies:
        name, _, pinned = requirement.partition("==")
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = None
        versions[name] = {"pinned": pinned, "found": found}
    return versions


# ----------------------------------------------------------------------------------------- corpus


def write_corpus(folder: Path, n_train: int, n_valid: int) -> dict:
    """Python and javascript train/valid splits of distinct synthetic functions, 3 to 45 body lines
    (a spread of target lengths around the 256-token cap, like mined code)."""
    from hybridcl.data.schema import write_jsonl_gz

    counts = {}
    for language in ("python", "javascript"):
        for split, first, n in (("train", 0, n_train), ("valid", n_train, n_valid)):
            records = [synthetic_record(language, i, split) for i in range(first, first + n)]
            counts[f"{language}_{split}"] = write_jsonl_gz(records, folder / language / f"{split}.jsonl.gz")
    return {"kind": "synthetic", "records": counts}


VERBS = ("add", "scale", "merge", "split", "count", "parse", "format", "clamp", "join", "filter")
NOUNS = ("items", "values", "names", "rows", "tokens", "paths", "words", "keys")


def synthetic_record(language: str, i: int, split: str):
    from hybridcl.data.schema import Record

    verb, noun = VERBS[i % len(VERBS)], NOUNS[i // len(VERBS) % len(NOUNS)]
    lines = 3 + (i * 7) % 43
    docstring = f"{verb.capitalize()} the {noun} in {lines} passes, keeping at most {i} of them. Returns the total."
    if language == "python":
        body = "".join(f"    total += {noun}[{j} % len({noun})] * {j} + limit\n" for j in range(lines))
        code = f"def {verb}_{noun}_{i}({noun}, limit={i}):\n    total = 0\n{body}    return total\n"
        return Record(f"pkg{i % 40}", f"mod{i}.py", f"{verb}_{noun}_{i}", language, code, docstring, split)
    body = "".join(f"  total += {noun}[{j} % {noun}.length] * {j} + limit;\n" for j in range(lines))
    code = f"function {verb}{noun.capitalize()}{i}({noun}, limit) {{\n  let total = 0;\n{body}  return total;\n}}\n"
    return Record(f"pkg{i % 40}", f"lib{i}.js", f"{verb}{noun}{i}", language, code, docstring, split)


# ------------------------------------------------------------------------------------------ steps


def seed_run(plan: Plan, data: list[str], work: Path) -> dict:
    """configs/seed-random-init.yaml end to end at the plan's sizes: wall time, and per stage the
    training and evaluation figures of the stage records (peak memory reset per stage)."""
    from hybridcl.config import load_config
    from hybridcl.continual import ContinualRun

    settings = [*data, *plan.seed_run]
    start = time.perf_counter()
    results = ContinualRun(load_config(SEED_CONFIG, settings), work / "seed-random-init").run()
    stages = [
        stage_figures(name, row) for name, entry in results["strategies"].items() for row in entry["cost"]["stages"]
    ]
    wall = time.perf_counter() - start
    return {"overrides": settings, "wall_time_s": wall, "finished": results["finished"], "stages": stages}


def stage_figures(strategy: str, row: dict) -> dict:
    """One stage's row of the results' cost table, as plain numbers (one seed)."""
    figures = {"strategy": strategy, "stage": row["stage"], "shared_with": row.get("shared_with")}
    for part in ("train", "eval"):
        if part in row:
            for key in ("wall_time_s", "tokens_per_s", "peak_memory_bytes"):
                figures[f"{part}_{key}"] = row[part][key]["mean"]
    if "train" in row:
        figures.update(train_steps=row["train"]["steps"], peak_memory_kind=row["train"]["peak_memory_kind"])
    return figures


def bench(plan: Plan, data: list[str], work: Path) -> dict:
    """`hybridcl bench` at the plan's shape, without scaling runs: both sides' training and evaluation
    figures and the speedups."""
    from hybridcl.bench.compare import main as bench_main

    out = work / "bench"
    arguments = ["--shape", plan.shape, "--device", plan.device, "--n-train", str(plan.bench_train)]
    arguments += ["--n-eval", str(plan.bench_eval), "--scaling", "--out", str(out)]
    arguments += [part for setting in (*data, *plan.settings) for part in ("--set", setting)]
    start = time.perf_counter()
    bench_main(arguments)
    report = json.loads(next(out.glob("*.json")).read_text())
    keep = ("shape", "n_train", "n_eval", "train", "eval", "train_speedup", "eval_speedup")
    return {"arguments": arguments, "wall_time_s": time.perf_counter() - start, **{key: report[key] for key in keep}}


def evaluation(plan: Plan, data: list[str], device) -> dict:
    """Greedy generation of `plan.eval_examples` python examples with task_specific's stage-1 components
    (a LoRA and a layer) at the plan's shape: examples/s and generated tokens/s."""
    from hybridcl.bench.compare import bench_config, load_workload
    from hybridcl.evaluate import generate_outputs
    from hybridcl.train import resolve_mixed_precision

    cfg = bench_config(plan.shape, 8, plan.eval_examples, [*data, *plan.settings])
    workload = load_workload(cfg, device)
    model = workload.fresh_model()
    model.freeze()
    precision = resolve_mixed_precision(cfg.train.mixed_precision)
    _, _, stats = generate_outputs(model, workload.eval_set, workload.tokenizer, cfg.eval, device, "eval", precision)
    return {
        "examples": len(workload.eval_set),
        "batch_size": cfg.eval.batch_size,
        "max_new_tokens": cfg.eval.max_new_tokens,
        "precision": precision,
        "examples_per_s": len(workload.eval_set) / stats.wall_time_s,
        **stats.to_dict(),
    }


# -------------------------------------------------------------------------------------------- run


class Report:
    """The check's JSON, rewritten after every step."""

    def __init__(self, path: Path, tree: dict):
        self.path, self.tree = path, tree

    def step(self, name: str, run) -> None:
        start = time.perf_counter()
        try:
            self.tree[name] = {"ok": True, **run()}
        except (Exception, SystemExit) as error:  # recorded; the next step runs (one GPU session tells all it can)
            traceback.print_exc()
            self.tree[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        self.tree[name]["step_seconds"] = time.perf_counter() - start
        print(f"gpu check: {name} {'done' if self.tree[name]['ok'] else 'FAILED'}", flush=True)
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.tree, indent=1) + "\n")


def default_out(smoke: bool) -> Path:
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / "gpu-check.json"
    date = datetime.now(timezone.utc).date().isoformat()
    return ROOT / "benchmarks" / "results" / f"{date}-gpu-check{'-smoke' if smoke else ''}.json"


def run_check(plan: Plan, out: Path, work: Path) -> dict:
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    report = Report(out, {"check": plan.device, "started": started.isoformat(timespec="seconds")})
    report.tree["plan"] = asdict(plan)
    report.step("install", lambda: install(WHEELS, work / "site"))
    if not report.tree["install"]["ok"]:
        return report.tree
    os.chdir(ROOT)  # the configs name the shipped tokenizer by its relative path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: no 3-second probes of the hub
    from hybridcl import versions
    from hybridcl.cli import LIBRARY_ENVIRONMENT

    for key, value in LIBRARY_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    import torch

    from hybridcl.bench.compare import machine
    from hybridcl.train import free_cached_memory

    device = torch.device(plan.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        report.tree["error"] = "no CUDA device here (--smoke runs on the CPU)"
        report.write()
        return report.tree
    report.tree.update(machine=machine(device), versions=versions())
    corpus = work / "corpus"
    data = [f"data.source={corpus}", f"data.cache_dir={work / 'cache'}", "offline.build=false"]
    steps = {
        "corpus": lambda: write_corpus(corpus, plan.corpus_train, plan.corpus_valid),
        "seed_random_init": lambda: seed_run(plan, data, work),
        "eval_2k": lambda: evaluation(plan, data, device),
        "bench": lambda: bench(plan, data, work),
    }
    for name, step in steps.items():
        report.step(name, step)
        free_cached_memory(device)  # each step's peak memory is its own
    finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
    report.tree.update(wall_time_s=time.perf_counter() - clock, finished=finished)
    report.write()
    return report.tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="the CPU at tiny sizes, in well under two minutes")
    parser.add_argument("--prepare", action="store_true", help="download what the GPU image lacks into .whl/")
    parser.add_argument("--out", type=Path, default=None, help="the JSON (default: see above)")
    args = parser.parse_args(argv)
    if args.prepare:
        prepare()
        return 0
    out = args.out or default_out(args.smoke)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as work:
        tree = run_check(SMOKE if args.smoke else GPU, out.resolve(), Path(work))
    failed = [name for name, value in tree.items() if isinstance(value, dict) and value.get("ok") is False]
    print(f"gpu check: {out} ({'failed: ' + ', '.join(failed) if failed else tree.get('error', 'every step done')})")
    return 1 if failed or "error" in tree else 0


if __name__ == "__main__":
    sys.exit(main())
