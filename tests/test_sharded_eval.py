"""Evaluation shared by two processes (`torchrun`, gloo on the CPU) gives what one process gives: the same
predictions file, each validation example once and in order, the same figures, and rank 0 alone writes
(tests/eval_worker.py makes any write of another rank fail)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hybridcl.run_files import RESULTS_FILE
from smoke import SMOKE

WORKER = Path(__file__).with_name("eval_worker.py")
# 7 examples in batches of 3 make 3 batches: rank 0 generates 4 examples, rank 1 3. A sampler that pads
# would repeat an example, one that drops would lose one.
SHARDING = ["data.n_valid=7", "eval.batch_size=3"]


def launch(*args: str, processes: int) -> None:
    # PYTHONHASHSEED: CodeBLEU's dataflow score depends on str hashing.
    env = {**os.environ, "PYTHONPATH": str(WORKER.parent), "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    env.pop("HYBRIDCL_KILL_AT", None)
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [sys.executable, *(torchrun if processes > 1 else []), str(WORKER), *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def overrides(assets: dict) -> list[str]:
    return [
        f"data.source={assets['corpus']}",
        f"model.name={assets['base']}",
        f"data.cache_dir={assets['cache']}",
        *SHARDING,
    ]


def files(out: Path) -> list[str]:
    return sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())


def ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_two_processes_evaluate_the_same_components_like_one(smoke_assets, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    settings = [*overrides(smoke_assets), "layer.init=random"]
    launch("evaluate", str(one), *settings, processes=1)
    launch("evaluate", str(two), *settings, processes=2)
    assert files(two) == files(one) == ["predictions.jsonl", "scores.json"]
    assert (two / "predictions.jsonl").read_text() == (one / "predictions.jsonl").read_text()
    rows = [json.loads(line) for line in (two / "predictions.jsonl").read_text().splitlines()]
    assert len({row["id"] for row in rows}) == 7 and any(row["prediction"] for row in rows)
    assert json.loads((two / "scores.json").read_text()) == json.loads((one / "scores.json").read_text())


def test_a_two_process_run_writes_what_a_one_process_run_writes(smoke_assets, tmp_path):
    """Training differs (two processes share each step's batches), so only stage 0, the base model,
    has the same predictions; every stage has each example once, in the same order."""
    one, two = tmp_path / "one", tmp_path / "two"
    arguments = [str(SMOKE), *(part for setting in overrides(smoke_assets) for part in ("--set", setting))]
    launch("run", str(one), *arguments, processes=1)
    launch("run", str(two), *arguments, processes=2)
    assert files(two) == files(one)
    predictions = [path for path in files(one) if path.endswith(".jsonl")]
    assert len(predictions) == 10
    for path in predictions:
        assert ids(two / path) == ids(one / path) and len(set(ids(one / path))) == 7, path
        if path.startswith("stage0/"):
            assert (two / path).read_text() == (one / path).read_text(), path
    results = [json.loads((out / RESULTS_FILE).read_text()) for out in (one, two)]
    assert results[1]["finished"] and results[1]["device"]["processes"] == 2
    for strategy, entry in results[0]["strategies"].items():
        for metric, matrix in entry["matrices"].items():
            assert results[1]["strategies"][strategy]["matrices"][metric][0] == matrix[0], metric
