"""The continual runner end to end on configs/smoke.yaml: outputs, protocol invariants, resuming."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

import hybridcl.continual as continual
from hybridcl.continual import ContinualRun, data_summary
from hybridcl.data.csn import TaskData
from hybridcl.data.schema import DataError
from hybridcl.metrics import OUTPUT_STATS
from hybridcl.run_files import RESULTS_FILE
from hybridcl.settings import ConfigError
from hybridcl.train import resolve_mixed_precision
from smoke import smoke_config


@pytest.fixture(scope="session")
def smoke_run(smoke_assets, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    results = ContinualRun(smoke_config(smoke_assets), out).run()
    return out, results


def predictions(folder: Path) -> list[str]:
    return [json.loads(line)["prediction"] for line in folder.read_text().splitlines()]


def test_outputs_of_design_section_4_exist_and_parse(smoke_run):
    out, results = smoke_run
    assert (out / "config.yaml").is_file() and (out / "analysis.md").is_file()
    assert list((out / "plots").glob("*.png"))
    saved = json.loads((out / RESULTS_FILE).read_text())
    assert saved["finished"] is True and saved["tasks"] == ["python", "javascript"]
    for name, folder in (("task_specific", "experiment_1_results"), ("shared_layer", "experiment_2_results")):
        entry = saved["strategies"][name]
        assert entry["results_dir"] == folder
        assert len(entry["matrices"]["bleu"]) == 3 and all(len(row) == 2 for row in entry["matrices"]["bleu"])
        assert set(entry["cl"]["bleu"]) == {"average", "forgetting", "forgetting_rate", "bwt", "fwt", "notes"}
        assert set(entry["outputs"]) == set(OUTPUT_STATS)
        assert entry["cost"]["stages"][1]["train"]["wall_time_s"]["mean"] > 0
        assert (out / folder / "seed0" / "stage1" / "predictions" / "python.jsonl").is_file()
    adapter = out / "experiment_1_results" / "seed0" / "stage2" / "lora" / "javascript"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert (out / "experiment_2_results" / "seed0" / "stage2" / "layers" / "shared.safetensors").is_file()
    assert saved["data"]["python"]["counts"]["train"] == 24


def test_the_output_checks_are_measured_and_each_predictions_flags_written(smoke_run):
    out, _ = smoke_run
    stage = out / "experiment_1_results" / "seed0" / "stage1"
    scores = json.loads((stage / "stage.json").read_text())["eval"]["javascript"]["scores"]
    rows = [json.loads(line) for line in (stage / "predictions" / "javascript.jsonl").read_text().splitlines()]
    for flag, share in (("loops", "looping_share"), ("truncated", "truncated_share"),
                        ("wrong_language", "wrong_language_share")):  # fmt: skip
        assert scores[share] == sum(row[flag] for row in rows) / len(rows)


def test_stage_1_is_trained_once_and_shared(smoke_run):
    out, results = smoke_run
    shared = results["strategies"]["shared_layer"]["cost"]["stages"][1]
    assert shared.get("shared_with") == "task_specific"
    assert "shared_with" not in results["strategies"]["shared_layer"]["cost"]["stages"][2]
    copied = json.loads((out / "experiment_2_results" / "seed0" / "stage1" / "stage.json").read_text())
    for task in ("python", "javascript"):  # its own names, which its own folder holds
        assert copied["eval"][task]["components"] == {"lora": "python", "layer": "shared"}
    assert (out / "experiment_2_results" / "seed0" / "stage1" / "layers" / "shared.safetensors").is_file()


def test_task_specific_keeps_task_1_predictions_and_shared_layer_changes_them(smoke_run):
    out, _ = smoke_run
    specific = out / "experiment_1_results" / "seed0"
    assert predictions(specific / "stage1/predictions/python.jsonl") == predictions(
        specific / "stage2/predictions/python.jsonl"
    )
    shared = out / "experiment_2_results" / "seed0"
    assert predictions(shared / "stage1/predictions/python.jsonl") != predictions(
        shared / "stage2/predictions/python.jsonl"
    )


class Interrupted(Exception):
    pass


def test_a_run_killed_after_stage_1_continues_without_retraining(smoke_assets, smoke_run, tmp_path, monkeypatch):
    cfg = smoke_config(smoke_assets)
    real_train_stage = continual.train_stage
    trained: list[str] = []

    def train_stage_then_die(model, loader, train, accelerator, desc="", **hooks):
        if " s2 " in desc:
            raise Interrupted(desc)
        trained.append(desc)
        return real_train_stage(model, loader, train, accelerator, desc, **hooks)

    monkeypatch.setattr(continual, "train_stage", train_stage_then_die)
    with pytest.raises(Interrupted):
        ContinualRun(cfg, tmp_path).run()
    assert trained == ["task_specific s1 seed0"]

    monkeypatch.setattr(continual, "train_stage", real_train_stage)
    retrained = counting(monkeypatch)
    resumed = ContinualRun(cfg, tmp_path).run()
    assert retrained == ["task_specific s2 seed0", "shared_layer s2 seed0"]
    _, uninterrupted = smoke_run
    for name in ("task_specific", "shared_layer"):
        assert resumed["strategies"][name]["matrices"] == uninterrupted["strategies"][name]["matrices"]


def test_full_finetune_saves_its_tied_base_and_a_restart_restores_it(smoke_assets, tmp_path, monkeypatch):
    """T5 ties its embeddings; the saved base holds each tensor once, and stage 2 retrained after a
    restart starts from the restored stage-1 base, so it scores as the uninterrupted run did."""
    cfg = smoke_config(smoke_assets, "strategies=[full_finetune]")
    uninterrupted = ContinualRun(cfg, tmp_path).run()
    stage2 = tmp_path / "full_finetune_results" / "seed0" / "stage2"
    assert (stage2.parent / "stage1" / "base.safetensors").is_file()
    (stage2 / "stage.json").unlink()
    retrained = counting(monkeypatch)
    resumed = ContinualRun(cfg, tmp_path).run()
    assert retrained == ["full_finetune s2 seed0"]
    matrices = resumed["strategies"]["full_finetune"]["matrices"]
    assert matrices == uninterrupted["strategies"]["full_finetune"]["matrices"]


def keys(tree):
    """Every key of every object in a JSON tree."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield key
            yield from keys(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from keys(value)


def test_results_written_mid_run_hold_no_private_keys(smoke_assets, smoke_run, tmp_path, monkeypatch):
    """`task_specific` unfinished (its stage 2 removed), then `shared_layer` finished: the results file
    written on the way has the schema's keys only, in the finished strategy too."""
    out = tmp_path / "run"
    shutil.copytree(smoke_run[0], out)
    shutil.rmtree(out / "experiment_1_results" / "seed0" / "stage2")

    def interrupted(model, loader, train, accelerator, desc="", **hooks):
        raise Interrupted(desc)

    monkeypatch.setattr(continual, "train_stage", interrupted)
    with pytest.raises(Interrupted, match="task_specific s2"):
        ContinualRun(smoke_config(smoke_assets), out).run()
    saved = json.loads((out / RESULTS_FILE).read_text())
    assert saved["finished"] is False
    assert saved["strategies"]["task_specific"]["matrices"]["bleu"][2] == [None, None]
    assert None not in saved["strategies"]["shared_layer"]["matrices"]["bleu"][2]
    assert [key for key in keys(saved) if key.startswith("_")] == []


def test_a_result_changing_setting_on_a_finished_folder_is_refused_naming_both_values(smoke_assets, smoke_run):
    out, _ = smoke_run
    with pytest.raises(ConfigError, match=r"train\.lr: 0\.001 there, 0\.5 now"):
        ContinualRun(smoke_config(smoke_assets, "train.lr=0.5"), out).run()


def test_a_folder_trained_in_another_precision_is_refused_unless_that_precision_is_asked_for(
    smoke_assets, smoke_run, tmp_path, monkeypatch
):
    """`auto` resolves by hardware: the folder's recorded precision, not the setting, must match."""
    out = tmp_path / "run"
    shutil.copytree(smoke_run[0], out)
    results = json.loads((out / RESULTS_FILE).read_text())
    here = resolve_mixed_precision("auto")
    assert results["device"]["precision"] == {"train": here, "generation": resolve_mixed_precision("auto", "cpu", True)}
    other = "no" if here == "bf16" else "bf16"
    results["device"]["precision"]["train"] = other
    (out / RESULTS_FILE).write_text(json.dumps(results))
    with pytest.raises(
        ConfigError, match=rf"trained in precision '{other}'; here train.mixed_precision='auto' trains in"
    ):
        ContinualRun(smoke_config(smoke_assets), out).run()
    trained = counting(monkeypatch)
    assert ContinualRun(smoke_config(smoke_assets, f"train.mixed_precision='{other}'"), out).run()["finished"]
    assert trained == []


def counting(monkeypatch) -> list[str]:
    """Replace the runner's train_stage by one that records each stage it trains."""
    trained, real_train_stage = [], continual.train_stage

    def train_stage(model, loader, train, accelerator, desc="", **hooks):
        trained.append(desc)
        return real_train_stage(model, loader, train, accelerator, desc, **hooks)

    monkeypatch.setattr(continual, "train_stage", train_stage)
    return trained


def test_settings_that_change_no_result_continue_a_finished_folder(smoke_assets, smoke_run, tmp_path, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(smoke_run[0], out)
    trained = counting(monkeypatch)
    cfg = smoke_config(smoke_assets, "eval.batch_size=3", f"data.cache_dir={tmp_path / 'cache'}", "name=renamed")
    results = ContinualRun(cfg, out).run()
    assert trained == [] and results["finished"] is True
    assert results["strategies"]["task_specific"]["matrices"] == smoke_run[1]["strategies"]["task_specific"]["matrices"]
    assert "batch_size: 3" in (out / "config.yaml").read_text()


def test_more_seeds_on_a_finished_run_add_the_missing_seeds(smoke_assets, smoke_run, tmp_path, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(smoke_run[0], out)
    trained = counting(monkeypatch)
    results = ContinualRun(smoke_config(smoke_assets, "seeds=2"), out).run()
    assert trained == ["task_specific s1 seed1", "task_specific s2 seed1", "shared_layer s2 seed1"]
    assert results["seeds"] == [0, 1] and results["finished"] is True
    before = smoke_run[1]["strategies"]["shared_layer"]["cl"]["bleu"]["average"]["values"]
    average = results["strategies"]["shared_layer"]["cl"]["bleu"]["average"]
    assert average["n"] == 2 and average["values"][0] == before[0]


def test_a_folder_whose_run_failed_before_stage_0_is_not_locked(smoke_assets, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(DataError):
        ContinualRun(smoke_config(smoke_assets, "data.languages=[python, go]"), out).run()
    assert not out.exists()
    out.mkdir()
    (out / "config.yaml").write_text("name: smoke\ntrain: {lr: 0.5}\n")  # written by a run that died in stage 0
    results = ContinualRun(smoke_config(smoke_assets), out).run()
    assert results["finished"] is True and "lr: 0.001" in (out / "config.yaml").read_text()


def test_the_data_summary_counts_each_split_and_warns_above_a_fifth_skipped():
    counts = {"train_read": 100, "train_examined": 55, "train": 24, "valid_read": 12, "valid_examined": 7, "valid": 6}
    task = TaskData(
        "python", [], [], {"train": Counter(bad_json=30, duplicate=1), "valid": Counter(too_long=1)}, counts
    )
    lines = data_summary({"python": task}).splitlines()
    assert lines[1].split() == [
        "python",
        "train",
        "100",
        "->",
        "55",
        "->",
        "24",
        "skipped",
        "31:",
        "bad_json",
        "30,",
        "duplicate",
        "1",
    ]
    assert lines[2].split()[:9] == ["python", "valid", "12", "->", "7", "->", "6", "skipped", "1:"]
    assert lines[3:] == [
        "warning: python train: 56% of 55 records looked at were unusable (bad_json 30, duplicate 1); check the data"
    ]
    chosen = TaskData("python", [], [], {"train": Counter(code_too_long=30, duplicate=1), "valid": Counter()}, counts)
    assert "warning" not in data_summary({"python": chosen})  # data.max_code_chars skips by choice
