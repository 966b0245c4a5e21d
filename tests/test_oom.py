"""Out of accelerator memory, injected on the CPU: generation halves its batch and records the size it
used, with the same predictions; one example that does not fit, and training that does not fit, stop
with one line naming the settings to change, and a rerun continues from the stages finished before."""

from __future__ import annotations

import json

import pytest
import torch

import hybridcl.train
from hybridcl.cli import main
from hybridcl.data.batching import encode_records
from hybridcl.data.csn import load_task_data
from hybridcl.errors import UserError
from hybridcl.evaluate import generate_outputs
from hybridcl.model.base import load_base
from hybridcl.model.hybrid import HybridModel
from hybridcl.run_files import RESULTS_FILE
from smoke import smoke_config
from test_cli_errors import smoke_args

OUT_OF_MEMORY = "CUDA out of memory. Tried to allocate 2.00 GiB"


def failing_above(real_generate, limit: int, error: Exception, sizes: list[int]):
    """`real_generate`, failing with `error` for batches of more than `limit` examples; records each batch size."""

    def generate(*args, **kwargs):
        sizes.append(kwargs["input_ids"].shape[0])
        if sizes[-1] > limit:
            raise error
        return real_generate(*args, **kwargs)

    return generate


@pytest.fixture(scope="module")
def twelve_examples(smoke_assets):
    """The micro base, its tokenizer, the evaluation settings (batch 8) and 12 encoded python examples."""
    cfg = smoke_config(smoke_assets, "data.n_valid=12")
    model, tokenizer = load_base(cfg.model)
    records = load_task_data(cfg.data, "python").valid
    encoded = encode_records(records, tokenizer, direction="generate", max_source_tokens=48, max_target_tokens=48)
    assert len(encoded) == 12 and cfg.eval.batch_size == 8
    return model, tokenizer, cfg.eval, encoded


def run_generate(setup, monkeypatch, limit: int | None = None, error: Exception | None = None, sizes=None):
    """Predictions and cost of the 12 examples; with `limit`, batches above it fail with `error` (default:
    out of memory) and their sizes go to `sizes`."""
    model, tokenizer, settings, encoded = setup
    if limit is not None:
        error = error or torch.OutOfMemoryError(OUT_OF_MEMORY)
        monkeypatch.setattr(
            model, "generate", failing_above(model.generate, limit, error, [] if sizes is None else sizes)
        )
    predictions, _, stats = generate_outputs(model, encoded, tokenizer, settings, torch.device("cpu"))
    monkeypatch.undo()
    return predictions, stats


def test_generation_out_of_memory_halves_the_batch_to_what_fits_with_the_same_predictions(twelve_examples, monkeypatch):
    full, full_stats = run_generate(twelve_examples, monkeypatch)
    sizes: list[int] = []
    halved, stats = run_generate(twelve_examples, monkeypatch, limit=2, sizes=sizes)
    # batch 1 (8 examples): 8 and 4 fail, then four pieces of 2; batch 2 (4 examples): two pieces of 2
    assert sizes == [8, 4, 2, 2, 2, 2, 2, 2]
    assert full_stats.batch_size_used == 8 and stats.batch_size_used == 2
    assert halved == full and any(full)
    assert stats.generated_tokens == full_stats.generated_tokens


def test_one_example_out_of_memory_is_one_clear_error(twelve_examples, monkeypatch):
    sizes: list[int] = []
    with pytest.raises(UserError) as caught:
        run_generate(twelve_examples, monkeypatch, limit=0, sizes=sizes)
    message = str(caught.value)
    assert "\n" not in message and "one example at a time" in message and "eval.max_new_tokens" in message
    assert sizes == [8, 4, 2, 1]


def test_other_runtime_errors_are_not_taken_for_out_of_memory(twelve_examples, monkeypatch):
    with pytest.raises(RuntimeError, match="shape mismatch") as caught:
        run_generate(twelve_examples, monkeypatch, limit=2, error=RuntimeError("shape mismatch"))
    assert not isinstance(caught.value, UserError)


def last_line_the_only_error(err: str) -> str:
    """The error line of a run that stopped after some work: progress bars above it, nothing after."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and sum("error" in line for line in lines) == 1, err
    assert lines[-1].startswith("hybridcl: error: "), err
    return lines[-1]


def test_training_out_of_memory_stops_in_one_line_and_a_rerun_continues(smoke_assets, tmp_path, capsys, monkeypatch):
    real_step_loss = hybridcl.train.step_loss
    steps = []

    def step_loss_out_of_memory_from_step_4(*args):
        steps.append(1)
        if len(steps) >= 4:  # stage 1 takes 3 steps (24 examples in batches of 8): stage 2's first step
            raise torch.OutOfMemoryError(OUT_OF_MEMORY)
        return real_step_loss(*args)

    generate_sizes: list[int] = []
    monkeypatch.setattr(hybridcl.train, "step_loss", step_loss_out_of_memory_from_step_4)
    over_4 = failing_above(HybridModel.generate, 4, torch.OutOfMemoryError(OUT_OF_MEMORY), generate_sizes)
    monkeypatch.setattr(HybridModel, "generate", over_4)
    args = smoke_args(smoke_assets, tmp_path)
    assert main(args) == 2
    line = last_line_the_only_error(capsys.readouterr().err)
    assert "out of accelerator memory training task_specific s2 seed0 at train.batch_size=8" in line
    assert "(train.grad_accum_steps=1)" in line
    assert 6 in generate_sizes and max(generate_sizes) == 6  # the 6 examples' batch of 8 failed, then 4 + 2

    stage1 = tmp_path / "experiment_1_results" / "seed0" / "stage1" / "stage.json"
    finished = [tmp_path / "stage0" / "seed0" / "stage.json", stage1]
    assert all(path.is_file() for path in finished)
    assert not (stage1.parent.parent / "stage2" / "stage.json").exists()
    for path in finished:
        assert {task["cost"]["batch_size_used"] for task in json.loads(path.read_text())["eval"].values()} == {4}
    bleu = json.loads((tmp_path / RESULTS_FILE).read_text())["strategies"]["task_specific"]["matrices"]["bleu"]
    assert bleu[1][0] is not None and bleu[2] == [None, None]

    monkeypatch.undo()
    stage1_before = stage1.read_text()
    assert main(args) == 0
    assert stage1.read_text() == stage1_before  # restored, not trained again
    stage2 = json.loads((stage1.parent.parent / "stage2" / "stage.json").read_text())
    assert {task["cost"]["batch_size_used"] for task in stage2["eval"].values()} == {8}
    assert json.loads((tmp_path / RESULTS_FILE).read_text())["finished"] is True
