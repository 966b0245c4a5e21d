"""docs/stock-rebuild.md's script, taken from the page and run on small real runs in a fresh interpreter:
stock libraries alone rebuild each stage's model and regenerate every stored prediction, string for string."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hybridcl.continual import ContinualRun
from hybridcl.run_files import results_dir_name
from smoke import smoke_config

DOC = Path(__file__).parents[1] / "docs" / "stock-rebuild.md"
STOCK_MODULES = {"argparse", "json", "sys", "pathlib", "torch", "transformers", "peft", "safetensors"}
# Stronger training than the smoke config's, so that every component changes what the model writes;
# 12 examples per task in batches of 5, so each evaluation has several padded batches.
TRAINED = ("data.n_valid=12", "eval.batch_size=5", "train.lr=0.01", "train.epochs=3")
RUNS = {
    "encoder_top": (),
    "two_blocks": ("layer.count=2", "strategies=[shared_layer]"),
    "decoder_top": ("layer.position=decoder_top", "layer.count=2", "strategies=[task_specific]"),
}
# (run, strategy, stage): every task that stage evaluated
REBUILDS = [
    ("encoder_top", "task_specific", 2),  # python through stage 1's adapter and layer, javascript through stage 2's
    ("encoder_top", "shared_layer", 2),  # the shared layer's stage 2 copy, python's adapter from stage 1
    ("encoder_top", "shared_layer", 1),  # a stage copied from task_specific
    ("two_blocks", "shared_layer", 2),
    ("decoder_top", "task_specific", 2),
]
# Runs the script as __main__ once per argv, in one interpreter: the libraries are imported once.
DRIVER = """
import json, runpy, sys
for argv in json.loads(sys.argv[1]):
    sys.argv = argv
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as end:
        print("exit", end.code)
"""


def doc_script() -> str:
    blocks = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)
    assert len(blocks) == 1, f"{DOC.name} must hold exactly one python block, the script; found {len(blocks)}"
    return blocks[0]


def predictions(path: Path) -> list[tuple[str, str]]:
    return [(row["id"], row["prediction"]) for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())]


def stage_folder(run: Path, strategy: str, stage: int) -> Path:
    return run / results_dir_name(strategy) / "seed0" / f"stage{stage}"


@pytest.fixture(scope="module")
def runs(smoke_assets, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stock_runs")
    with pytest.MonkeyPatch.context() as patch:
        # analysis.md and the plots are no input of a rebuild, and drawing them takes seconds per run
        patch.setattr("hybridcl.report.write_report", lambda results, out: None)
        for name, overrides in RUNS.items():
            ContinualRun(smoke_config(smoke_assets, *TRAINED, *overrides), root / name).run()
    return root


@pytest.fixture(scope="module")
def rebuilt(runs, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The doc's script on every REBUILDS entry, in a fresh interpreter that reports each module it imports."""
    work = tmp_path_factory.mktemp("stock_rebuild")
    script = work / "rebuild_stage.py"
    script.write_text(doc_script(), encoding="utf-8")
    calls = [
        [str(script), str(runs / run), strategy, "0", str(stage), "--out", str(work / run / strategy / str(stage))]
        for run, strategy, stage in REBUILDS
    ]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    command = [sys.executable, "-X", "importtime", "-c", DRIVER, json.dumps(calls)]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, done


def test_the_script_imports_only_stock_libraries():
    tree = ast.parse(doc_script())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert {name.split(".")[0] for name in imported} <= STOCK_MODULES


def test_the_running_script_never_loaded_hybridcl(rebuilt):
    _, done = rebuilt
    loaded = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert {"torch", "transformers", "peft", "safetensors"} <= loaded  # the report lists what was imported
    assert not {name for name in loaded if name.split(".")[0] == "hybridcl"}


def test_the_script_finds_every_prediction_equal(rebuilt):
    _, done = rebuilt
    assert done.stdout.count("exit 0") == len(REBUILDS), done.stdout


@pytest.mark.parametrize("run, strategy, stage", REBUILDS)
def test_every_prediction_is_regenerated_exactly(runs, rebuilt, run, strategy, stage):
    work, _ = rebuilt
    stored_dir = stage_folder(runs / run, strategy, stage) / "predictions"
    base_dir = runs / run / "stage0" / "seed0" / "predictions"
    tasks = sorted(path.stem for path in stored_dir.glob("*.jsonl"))
    assert tasks == ["javascript", "python"]
    for task in tasks:
        stored = predictions(stored_dir / f"{task}.jsonl")
        assert len(stored) == 12
        assert predictions(work / run / strategy / str(stage) / f"{task}.jsonl") == stored, task
    # the components change what the model writes: equal predictions mean they were rebuilt
    assert any(predictions(stored_dir / f"{t}.jsonl") != predictions(base_dir / f"{t}.jsonl") for t in tasks)
