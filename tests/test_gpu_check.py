"""benchmarks/gpu_check.py --smoke: every step of the GPU check on the CPU at tiny sizes, one JSON with
positive figures; and the generated-token count it reports for a model that never ends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hybridcl.evaluate import generated_tokens

CHECK = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"
STEPS = ("install", "corpus", "seed_random_init", "eval_2k", "bench")


@pytest.mark.slow
def test_the_smoke_check_runs_every_step_and_writes_positive_figures(tmp_path):
    out = tmp_path / "check.json"
    env = {key: value for key, value in os.environ.items() if key not in ("OUT", "HYBRIDCL_KILL_AT")}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(
        [sys.executable, str(CHECK), "--smoke", "--out", str(out)], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    check = json.loads(out.read_text())
    assert {"check", "plan", "machine", "versions", "wall_time_s", "finished", *STEPS} <= set(check)
    assert check["check"] == "cpu" and all(check[step]["ok"] and check[step]["step_seconds"] > 0 for step in STEPS)
    assert check["install"]["packages"]["torch"]["found"]

    seed_run = check["seed_random_init"]
    assert seed_run["finished"] and seed_run["wall_time_s"] > 0
    trained = [stage for stage in seed_run["stages"] if "train_wall_time_s" in stage]
    assert len(seed_run["stages"]) == 6 and len(trained) == 4  # 2 strategies x stages 0..2; stage 0 trains nothing
    for stage in seed_run["stages"]:
        assert min(stage[f"eval_{key}"] for key in ("wall_time_s", "tokens_per_s", "peak_memory_bytes")) > 0, stage
    for stage in trained:
        assert min(stage[f"train_{key}"] for key in ("wall_time_s", "tokens_per_s", "peak_memory_bytes")) > 0, stage

    evaluation = check["eval_2k"]
    assert evaluation["examples"] == 16 and evaluation["batch_size_used"] == 8
    assert min(evaluation[key] for key in ("examples_per_s", "tokens_per_s", "generated_tokens")) > 0
    bench = check["bench"]
    assert bench["train_speedup"] > 0 and bench["eval_speedup"] > 0
    assert bench["train"]["hybridcl"]["wall_time_s"] > 0 and bench["eval"]["Seq2SeqTrainer"]["wall_time_s"] > 0


def test_generated_tokens_run_to_the_first_eos_or_every_step_of_a_sequence_that_never_ends():
    # the generated steps: 3 tokens and EOS (2); pad only (a random model's favourite); EOS at once
    output = torch.tensor([[5, 6, 7, 2, 0], [0, 0, 0, 0, 0], [2, 0, 0, 0, 0]])
    assert generated_tokens(output, eos_token_id=2) == 4 + 5 + 1
