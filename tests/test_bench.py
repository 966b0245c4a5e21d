"""The side-by-side benchmark's correctness (not its speed): same training work, same scoring."""

from __future__ import annotations

import json
import re

import pytest
import torch

from hybridcl.bench import precision
from hybridcl.bench.compare import SIDES, bench_config, eval_side, generate_side, load_workload, main, train_side
from hybridcl.settings import ConfigError

SMALL = [
    "offline.build=false",
    "data.max_source_tokens=32",
    "data.max_target_tokens=32",
    "lora.r=4",
    "eval.max_new_tokens=12",
    "eval.batch_size=4",
    "train.lr=1e-2",
]


def overrides(assets) -> list[str]:
    return [
        f"model.name={assets['base']}",
        f"data.source={assets['corpus']}",
        f"data.cache_dir={assets['cache']}",
        *SMALL,
    ]


@pytest.fixture(scope="module")
def workload(smoke_assets):
    return load_workload(bench_config("tiny", 16, 6, overrides(smoke_assets)), torch.device("cpu"))


def test_both_sides_train_the_same_parameters_on_the_same_examples(workload):
    encoded = workload.train_prefix(12)  # 2 steps per epoch at batch 8, the second one short
    start = workload.fresh_model()
    before = {name: p.detach().clone() for name, p in start.named_parameters()}
    trainable = {name for name, p in start.named_parameters() if p.requires_grad}
    assert trainable and len(trainable) < len(before)
    figures = {}
    for side in SIDES:
        figures[side], model = train_side(workload, side, encoded)
        changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
        assert changed == trainable, side
    ours, theirs = figures["hybridcl"], figures["Seq2SeqTrainer"]
    epochs = workload.cfg.train.epochs
    assert ours["steps"] == theirs["steps"] == 2 * epochs
    assert ours["examples"] == theirs["examples"] == 12 * epochs
    assert ours["source_tokens"] == theirs["source_tokens"] == epochs * int(encoded.source_ids.lengths.sum())
    assert ours["trainable_params"] == theirs["trainable_params"]


def test_both_evaluations_score_the_same_predictions(workload):
    _, model = train_side(workload, "hybridcl", workload.train_prefix(16))
    (ours, our_predictions), (theirs, their_predictions) = (
        eval_side(workload, side, model) for side in ("hybridcl", "Seq2SeqTrainer")
    )
    assert len(our_predictions) == len(workload.eval_records) == 6
    assert our_predictions == their_predictions
    assert ours["scores"] == theirs["scores"]


@pytest.fixture
def linear_output_dtypes():
    """The dtypes of every nn.Linear output while the test runs, cleared on demand."""
    seen = set()

    def record(module, args, output):
        if isinstance(module, torch.nn.Linear):
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    yield seen
    handle.remove()


@pytest.mark.parametrize("mixed_precision, dtype", [("no", torch.float32), ("bf16", torch.bfloat16)])
def test_both_sides_train_and_generate_in_the_precision_asked_for(
    workload, linear_output_dtypes, mixed_precision, dtype
):
    workload = workload.with_precision(mixed_precision)
    for side in SIDES:
        linear_output_dtypes.clear()
        _, model = train_side(workload, side, workload.train_prefix(8))
        assert linear_output_dtypes == {dtype}, side
        linear_output_dtypes.clear()
        generate_side(workload, side, model)
        assert linear_output_dtypes == {dtype}, side


def test_more_examples_than_the_sample_is_a_clear_error(workload):
    with pytest.raises(ConfigError, match="17 training examples asked for, 16 available"):
        workload.train_prefix(17)


def test_the_benchmark_prints_its_table_and_writes_its_figures(smoke_assets, tmp_path, capsys):
    args = ["--n-train", "8", "--n-eval", "4", "--scaling", "8", "16", "--precision", "fp32", "--out", str(tmp_path)]
    assert main(args + [item for o in overrides(smoke_assets) for item in ("--set", o)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"train_speedup=\d+\.\d\d eval_speedup=\d+\.\d\d", lines[-1])
    [path] = tmp_path.glob("*-cpu-tiny.json")
    report = json.loads(path.read_text())
    assert [row["n_train"] for row in report["scaling"]] == [8, 16]
    assert report["scaling"][1]["hybridcl"]["examples"] == 16 * report["config"]["train"]["epochs"]
    assert report["versions"]["transformers"] and report["machine"]["device"] == "cpu"
    assert report["precision"] == {"train": "no", "generation": "no"}
    speedup = report["train"]["Seq2SeqTrainer"]["wall_time_s"] / report["train"]["hybridcl"]["wall_time_s"]
    assert lines[-1].startswith(f"train_speedup={speedup:.2f} ")


def test_the_precision_benchmark_times_every_step_and_batch_of_each_side(smoke_assets, tmp_path, capsys):
    args = ["--config", "configs/smoke.yaml", "--rounds", "2", "--n-train", "16", "--n-eval", "6"]
    args += ["--out", str(tmp_path)]
    assert precision.main(args + [item for o in overrides(smoke_assets) for item in ("--set", o)]) == 0
    out = capsys.readouterr().out
    report = json.loads(next(tmp_path.glob("*-cpu-precision.json")).read_text())
    for side in SIDES:
        for name in precision.PRECISIONS:
            times = report["times"][side][name]
            # 16 examples at batch 8: two optimizer steps, one gap; 6 examples at batch 4 (or 8): 2 (or 1) batches
            batches = 2 if side == "hybridcl" else 1
            for clock in precision.CLOCKS:
                assert [len(steps) for steps in times[f"train_step_{clock}"]] == [1, 1]
                assert [len(gaps) for gaps in times[f"generation_batch_{clock}"]] == [batches, batches]
            assert all(t > 0 for part in times.values() for gaps in part for t in gaps)
        gain = report["summary"][side]["speedup"]["train_step_s"]
        fp32, bf16 = (report["summary"][side][name]["train_step_s"]["median"] for name in ("fp32", "bf16"))
        assert gain["median"] == pytest.approx(fp32 / bf16)
        assert re.search(rf"^{side} +bf16 +{bf16:.3f} \(", out, re.MULTILINE)
