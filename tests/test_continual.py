"""The continual runner end to end on configs/smoke.yaml: outputs, protocol invariants, resuming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hybridcl.continual as continual
from hybridcl.continual import RESULTS_FILE, ContinualRun
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
        assert set(entry["cl"]["bleu"]) == {"average", "forgetting", "forgetting_rate", "bwt", "fwt"}
        assert entry["cost"]["stages"][1]["train"]["wall_time_s"]["mean"] > 0
        assert (out / folder / "seed0" / "stage1" / "predictions" / "python.jsonl").is_file()
    adapter = out / "experiment_1_results" / "seed0" / "stage2" / "lora" / "javascript"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert (out / "experiment_2_results" / "seed0" / "stage2" / "layers" / "shared.safetensors").is_file()
    assert saved["data"]["python"]["counts"]["train"] == 24


def test_stage_1_is_trained_once_and_shared(smoke_run):
    out, results = smoke_run
    shared = results["strategies"]["shared_layer"]["cost"]["stages"][1]
    assert shared.get("shared_with") == "task_specific"
    assert "shared_with" not in results["strategies"]["shared_layer"]["cost"]["stages"][2]


def test_task_specific_keeps_task_1_predictions_and_shared_layer_changes_them(smoke_run):
    out, _ = smoke_run
    specific = out / "experiment_1_results" / "seed0"
    assert predictions(specific / "stage1/predictions/python.jsonl") == \
        predictions(specific / "stage2/predictions/python.jsonl")
    shared = out / "experiment_2_results" / "seed0"
    assert predictions(shared / "stage1/predictions/python.jsonl") != \
        predictions(shared / "stage2/predictions/python.jsonl")


class Interrupted(Exception):
    pass


def test_a_run_killed_after_stage_1_continues_without_retraining(smoke_assets, smoke_run, tmp_path, monkeypatch):
    cfg = smoke_config(smoke_assets)
    real_train_stage = continual.train_stage
    trained: list[str] = []

    def train_stage_then_die(model, loader, train, accelerator, desc=""):
        if " s2 " in desc:
            raise Interrupted(desc)
        trained.append(desc)
        return real_train_stage(model, loader, train, accelerator, desc)

    monkeypatch.setattr(continual, "train_stage", train_stage_then_die)
    with pytest.raises(Interrupted):
        ContinualRun(cfg, tmp_path).run()
    assert trained == ["task_specific s1 seed0"]

    def counting_train_stage(model, loader, train, accelerator, desc=""):
        trained.append(desc)
        return real_train_stage(model, loader, train, accelerator, desc)

    monkeypatch.setattr(continual, "train_stage", counting_train_stage)
    resumed = ContinualRun(cfg, tmp_path).run()
    assert trained == ["task_specific s1 seed0", "task_specific s2 seed0", "shared_layer s2 seed0"]
    _, uninterrupted = smoke_run
    for name in ("task_specific", "shared_layer"):
        assert resumed["strategies"][name]["matrices"] == uninterrupted["strategies"][name]["matrices"]


def test_another_config_on_the_same_run_folder_is_refused(smoke_assets, smoke_run):
    out, _ = smoke_run
    with pytest.raises(Exception, match="another config"):
        ContinualRun(smoke_config(smoke_assets, "train.lr=0.5"), out).run()
