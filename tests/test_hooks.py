"""The strategy hooks (stage_data, extra_loss, after_stage): a test-only strategy that overrides all three,
registered for the test, run end to end on configs/smoke.yaml."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import hybridcl.continual as continual
from hybridcl.continual import ContinualRun
from hybridcl.data.batching import EncodedSet, RaggedIds, concat_encoded
from hybridcl.run_files import results_dir_name
from hybridcl.strategies import STRATEGIES, Sequential, StageContext, get_strategy, shared_prefix
from smoke import smoke_config

TASKS = ("python", "javascript")
CALLS: list[tuple] = []  # (hook, strategy, seed, stage, stage tasks, folder, ...) in call order


@dataclass(frozen=True)
class Probe(Sequential):
    """task_specific's components; each stage trains on its task and every earlier one (as replay would),
    with `penalty` x the squared norm of the trainable parameters added to the loss; records every call."""

    layer: str | None = "per_task"
    penalty: float = 1.0

    def stage_data(self, context: StageContext) -> EncodedSet:
        CALLS.append(call("stage_data", self, context))
        return concat_encoded([context.train_sets[key] for key in context.tasks[: context.stage.index]])

    def extra_loss(self, context: StageContext):
        CALLS.append(call("extra_loss", self, context))
        params = context.model.trainable_parameters()
        return lambda batch, outputs: self.penalty * sum(p.pow(2).sum() for p in params)

    def after_stage(self, context: StageContext) -> None:
        """Keeps the stages seen in `state` and writes them to its own file in the stage's folder."""
        context.state.setdefault("stages", []).append(context.stage.index)
        saved = sorted(path.name for path in (context.folder / "lora").iterdir())
        CALLS.append(call("after_stage", self, context) + (list(context.state["stages"]), saved, context.origin))
        (context.folder / "probe.json").write_text(json.dumps(context.state["stages"]))


def call(hook: str, strategy: Probe, context: StageContext) -> tuple:
    return (hook, strategy.name, context.seed, context.stage.index, context.stage.tasks, context.folder)


PROBES = {
    "probe": Probe("probe", "every hook overridden"),
    "probe_twin": Probe("probe_twin", "probe under another name"),
    "probe_zero": Probe("probe_zero", "probe with a zero extra loss", penalty=0.0),
}
ORDER = ("task_specific", "probe", "probe_twin", "probe_zero")


def probe_config(smoke_assets):
    """The smoke config with the probes (built after loading: config checks names against the registry
    as it was at import)."""
    return dataclasses.replace(smoke_config(smoke_assets), strategies=ORDER)


@pytest.fixture
def registered(monkeypatch):
    for name, strategy in PROBES.items():
        monkeypatch.setitem(STRATEGIES, name, strategy)
    CALLS.clear()
    return CALLS


@pytest.fixture(scope="module")
def probe_run(smoke_assets, tmp_path_factory) -> tuple[Path, dict, list[tuple]]:
    out = tmp_path_factory.mktemp("probes")
    with pytest.MonkeyPatch.context() as patch:
        for name, strategy in PROBES.items():
            patch.setitem(STRATEGIES, name, strategy)
        CALLS.clear()
        results = ContinualRun(probe_config(smoke_assets), out).run()
    return out, results, list(CALLS)


def stage_folder(out: Path, name: str, stage: int) -> Path:
    return out / results_dir_name(name) / "seed0" / f"stage{stage}"


def test_the_hooks_get_each_stage_its_tasks_and_its_folder_after_the_components_are_saved(probe_run):
    out, _, calls = probe_run
    probe = [c for c in calls if c[1] == "probe"]
    folder1, folder2 = stage_folder(out, "probe", 1), stage_folder(out, "probe", 2)
    assert probe == [
        ("stage_data", "probe", 0, 1, ("python",), folder1),
        ("extra_loss", "probe", 0, 1, ("python",), folder1),
        ("after_stage", "probe", 0, 1, ("python",), folder1, [1], ["python"], "trained"),
        ("stage_data", "probe", 0, 2, ("javascript",), folder2),
        ("extra_loss", "probe", 0, 2, ("javascript",), folder2),
        ("after_stage", "probe", 0, 2, ("javascript",), folder2, [1, 2], ["javascript"], "trained"),
    ]
    assert json.loads((folder2 / "probe.json").read_text()) == [1, 2]  # state kept across the stages


def test_the_data_hook_decides_what_trains(probe_run):
    _, results, _ = probe_run
    probe = results["strategies"]["probe"]["cost"]["stages"]
    specific = results["strategies"]["task_specific"]["cost"]["stages"]
    assert probe[1]["train"]["examples"] == specific[1]["train"]["examples"] == 24  # python
    assert probe[2]["train"]["examples"] == 48 and specific[2]["train"]["examples"] == 24  # python + javascript


def layer_weights(out: Path, name: str) -> dict[str, np.ndarray]:
    return load_file(str(stage_folder(out, name, 1) / "layers" / "python.safetensors"))


def test_an_extra_loss_changes_the_trained_weights_and_a_zero_one_does_not(probe_run):
    """Stage 1 of task_specific and the probes: same data, same components, same seed."""
    out, results, _ = probe_run
    specific, probe, zero = (layer_weights(out, name) for name in ("task_specific", "probe", "probe_zero"))
    assert any(not np.array_equal(specific[key], probe[key]) for key in specific)
    assert all(np.array_equal(specific[key], zero[key]) for key in specific)
    curves = {name: results["strategies"][name]["loss_curves"]["1"] for name in ORDER}
    assert curves["probe_zero"] == curves["task_specific"] and curves["probe"][0] > curves["task_specific"][0]


def test_a_strategy_with_hooks_shares_stages_only_with_its_own_class_and_settings(probe_run):
    out, results, calls = probe_run
    stages = {name: results["strategies"][name]["cost"]["stages"] for name in ORDER}
    assert [row.get("shared_with") for row in stages["probe"]] == [None, None, None]  # not task_specific's
    assert [row.get("shared_with") for row in stages["probe_zero"]] == [None, None, None]
    assert [row.get("shared_with") for row in stages["probe_twin"]] == [None, "probe", "probe"]
    twin = [c[:4] for c in calls if c[1] == "probe_twin"]
    assert twin == [("after_stage", "probe_twin", 0, 1), ("after_stage", "probe_twin", 0, 2)]  # copied, not trained
    assert [c[-1] for c in calls if c[1] == "probe_twin"] == ["copied", "copied"]
    assert (stage_folder(out, "probe_twin", 2) / "probe.json").is_file()


def test_the_signature_carries_the_hooks_class_and_settings(registered):
    specific, probe = get_strategy("task_specific"), PROBES["probe"]
    assert shared_prefix(specific, Sequential("plain", layer="per_task"), TASKS) == 2  # same components
    assert shared_prefix(specific, probe, TASKS) == 0
    assert shared_prefix(probe, PROBES["probe_twin"], TASKS) == 2
    assert shared_prefix(probe, PROBES["probe_zero"], TASKS) == 0
    assert probe.overridden_hooks() == ("stage_data", "extra_loss", "after_stage")
    assert specific.overridden_hooks() == () and specific.hooks_signature() == ()


class Interrupted(Exception):
    pass


def test_after_stage_rebuilds_the_state_when_a_finished_stage_is_restored(
    smoke_assets, probe_run, registered, tmp_path, monkeypatch
):
    """A run interrupted in probe's stage 2: the restart restores stage 1 (after_stage again, nothing
    trained) and trains stage 2 with the state rebuilt."""
    out = tmp_path / "run"
    shutil.copytree(probe_run[0], out)
    shutil.rmtree(stage_folder(out, "probe", 2))

    real_train_stage = continual.train_stage

    def interrupted(model, loader, train, accelerator, desc="", **hooks):
        raise Interrupted(desc)

    monkeypatch.setattr(continual, "train_stage", interrupted)
    with pytest.raises(Interrupted, match="probe s2"):
        ContinualRun(probe_config(smoke_assets), out).run()
    assert [c[:4] for c in registered] == [
        ("after_stage", "probe", 0, 1),
        ("stage_data", "probe", 0, 2),
        ("extra_loss", "probe", 0, 2),
    ]
    monkeypatch.setattr(continual, "train_stage", real_train_stage)
    registered.clear()
    results = ContinualRun(probe_config(smoke_assets), out).run()
    assert [c[:4] for c in registered] == [
        ("after_stage", "probe", 0, 1),
        ("stage_data", "probe", 0, 2),
        ("extra_loss", "probe", 0, 2),
        ("after_stage", "probe", 0, 2),
    ]
    assert registered[-1][6] == [1, 2]  # stage 1's entry came back with the restore
    assert (registered[0][-1], registered[-1][-1]) == ("restored", "trained")
    assert results["strategies"]["probe"]["matrices"] == probe_run[1]["strategies"]["probe"]["matrices"]


def test_the_default_data_hook_is_the_stage_tasks_training_sets():
    sets = {
        key: EncodedSet(RaggedIds.from_lists([[1, 2]] * n), RaggedIds.from_lists([[3]] * n))
        for key, n in (
            ("python", 2),
            ("javascript", 3),
        )
    }

    def data(name: str, index: int) -> EncodedSet:
        strategy = get_strategy(name)
        context = StageContext(None, strategy.stage(TASKS, index), TASKS, 0, sets, Path("."), {})
        return strategy.stage_data(context)

    assert data("task_specific", 2) is sets["javascript"]
    assert len(data("joint", 1)) == 5  # every task at once
    assert get_strategy("task_specific").extra_loss(None) is None
