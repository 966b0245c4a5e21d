"""The continual-learning baselines (hybridcl.strategies.baselines): each does what its paper says, on hand-made
data and tiny models, and end to end on configs/smoke.yaml (one run of all four)."""

from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import hybridcl.continual as continual
from hybridcl.config import load_config
from hybridcl.continual import ContinualRun
from hybridcl.data.batching import EncodedSet, RaggedIds
from hybridcl.model.families import SEQ2SEQ
from hybridcl.model.hybrid import HybridModel
from hybridcl.params import count_params
from hybridcl.run_files import results_dir_name
from hybridcl.settings import CLConfig, LayerSettings, LoraSettings, TrainConfig
from hybridcl.strategies import Components, StageContext, Use, get_strategy
from hybridcl.strategies.baselines import (
    EWC_FILES,
    ewc_penalty,
    orthogonality_penalty,
    per_task_sample,
    reservoir_sample,
    retrained_later,
)
from hybridcl.train import make_accelerator, prepare_stage, stage_loader, train_stage
from smoke import smoke_config
from tiny_models import TINY, tiny_t5

TWO = ("python", "javascript")
THREE = ("python", "javascript", "java")
BASELINES = ("replay", "ewc", "merge_then_add", "olora")


def smoke(smoke_assets):
    """The defaults, but a buffer smaller than a smoke task (24 examples)."""
    return smoke_config(smoke_assets, f"strategies=[{', '.join(BASELINES)}]", "cl.replay_size=10")


@pytest.fixture(scope="module")
def smoke_run(smoke_assets, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("baselines")
    return out, ContinualRun(smoke(smoke_assets), out).run()


def stage_folder(out: Path, name: str, stage: int) -> Path:
    return out / results_dir_name(name) / "seed0" / f"stage{stage}"


def shifted_task(offset: int, n: int = 32) -> EncodedSet:
    """Targets = sources shifted by `offset` in the vocabulary: learnable, and different per task."""
    rng = random.Random(offset)
    sources = [[rng.randrange(2, 30) for _ in range(6)] for _ in range(n)]
    targets = [[token + offset for token in source] + [TINY.eos_token_id] for source in sources]
    return EncodedSet(RaggedIds.from_lists(sources), RaggedIds.from_lists(targets))


TINY_SETS = {"python": shifted_task(1), "javascript": shifted_task(20)}
TINY_TRAIN = TrainConfig(epochs=4, batch_size=4, lr=1e-2, mixed_precision="no")  # 32 steps a stage


def train_two_stages(name: str, settings: CLConfig, folder: Path, snapshot) -> tuple[list, dict]:
    """Stages 1 and 2 of strategy `name` on a tiny T5 and two small tasks, hooks called as the runner calls
    them. Returns `snapshot(model)` after each stage's training, and the strategy's state at the end."""
    strategy = get_strategy(name).configured(settings)
    model = HybridModel(tiny_t5(), LoraSettings(r=2, alpha=4), LayerSettings())
    accelerator = make_accelerator(TINY_TRAIN, cpu=True)
    state, snapshots = {}, []
    for index in (1, 2):
        stage = prepare_stage(model, strategy, TWO, index, seed=0)
        context = StageContext(model, stage, TWO, 0, TINY_SETS, folder / f"stage{index}", state)
        loader = stage_loader(strategy.stage_data(context), TINY.pad_token_id, TINY_TRAIN, accelerator, kind=SEQ2SEQ)
        train_stage(model, loader, TINY_TRAIN, accelerator, extra_loss=strategy.extra_loss(context))
        snapshots.append(snapshot(model))
        strategy.after_stage(context)
    return snapshots, state


# ----------------------------------------------------------------------------------- registry


def test_the_baselines_are_registered_and_take_their_settings_from_the_cl_section():
    cfg = load_config(None, [f"strategies=[{', '.join(BASELINES)}]", "cl.ewc_lambda=3", "cl.olora_lambda=2"])
    assert cfg.strategies == BASELINES
    ewc, olora, replay = (get_strategy(name).configured(cfg.cl) for name in ("ewc", "olora", "replay"))
    assert (ewc.ewc_lambda, olora.olora_lambda, replay.replay_policy) == (3, 2, "reservoir")
    assert all(get_strategy(name).configured(CLConfig()) == get_strategy(name) for name in BASELINES)  # defaults
    assert ewc.hooks_signature() != get_strategy("ewc").hooks_signature()  # settings are in the signature
    assert get_strategy("shared_layer").configured(cfg.cl) == get_strategy("shared_layer")


def test_replay_and_ewc_have_experiment_2s_components_and_the_merging_ones_a_lora_per_task():
    shared_layer, lora_only = get_strategy("shared_layer"), get_strategy("lora_only")
    for name, twin in (("replay", shared_layer), ("ewc", shared_layer), ("merge_then_add", lora_only)):
        strategy = get_strategy(name)
        assert strategy.components(THREE) == twin.components(THREE)
        assert [s.trainable for s in strategy.stages(THREE)] == [s.trainable for s in twin.stages(THREE)]
    assert get_strategy("olora").components(THREE) == lora_only.components(THREE)


def test_hybridcl_params_counts_what_each_baseline_trains_and_stores():
    base, lora, layer = tiny_t5(), LoraSettings(r=2, alpha=4), LayerSettings()

    def figures(name: str) -> tuple:
        count = count_params(name, TWO, base, lora, layer)
        return [s["trainable"] for s in count["per_stage"]], count["stored"], count["stored_what"]

    assert figures("replay") == figures("ewc") == figures("shared_layer")
    assert figures("merge_then_add") == figures("olora") == figures("lora_only")
    adapter = count_params("olora", TWO, base, lora, layer)["lora_per_adapter"]
    assert figures("olora")[:2] == ([adapter, adapter], 2 * adapter)


# ------------------------------------------------------------------------------------- replay


def encoded(task_id: int, n: int) -> EncodedSet:
    """n examples whose source ids say which task and which example they are."""
    return EncodedSet(
        RaggedIds.from_lists([[task_id, i] for i in range(n)]), RaggedIds.from_lists([[i] for i in range(n)])
    )


SIZES = {"python": 30, "javascript": 20, "java": 10}
SETS = {task: encoded(k, n) for k, (task, n) in enumerate(SIZES.items())}


def replay_context(strategy, stage: int, seed: int = 0) -> StageContext:
    return StageContext(None, strategy.stage(THREE, stage), THREE, seed, SETS, Path("."), {})


def examples(data: EncodedSet) -> Counter:
    return Counter(tuple(data.source_ids[i].tolist()) for i in range(len(data)))


@pytest.mark.parametrize("policy", ["reservoir", "per_task"])
def test_a_replay_stage_trains_on_its_task_plus_exactly_the_buffer_of_earlier_tasks(policy):
    replay = get_strategy("replay").configured(CLConfig(replay_size=12, replay_policy=policy))
    assert examples(replay.stage_data(replay_context(replay, 1))) == examples(SETS["python"])
    for stage in (2, 3):
        context = replay_context(replay, stage)
        buffer = replay.buffer(context)
        assert set(buffer) == set(THREE[: stage - 1])  # the earlier tasks only
        assert sum(len(rows) for rows in buffer.values()) == 12
        replayed = Counter((THREE.index(task), i) for task, rows in buffer.items() for i in rows)
        assert examples(replay.stage_data(context)) == examples(SETS[THREE[stage - 1]]) + replayed


def test_the_per_task_policy_gives_each_earlier_task_an_equal_share():
    assert [len(rows) for rows in per_task_sample(SIZES, 12, seed=0).values()] == [4, 4, 4]
    assert [len(rows) for rows in per_task_sample(SIZES, 7, seed=0).values()] == [3, 2, 2]  # the first take the rest


def test_the_ring_policy_keeps_a_fixed_slot_per_task_of_the_stream():
    """CodeTask-CL's ring buffer: replay_size // (tasks in the stream) per earlier task, however many came before."""
    replay = get_strategy("replay").configured(CLConfig(replay_size=13, replay_policy="ring"))
    for stage, shares in ((2, [4]), (3, [4, 4])):  # 13 // 3 tasks; the remainder stays empty
        buffer = replay.buffer(replay_context(replay, stage))
        assert [len(rows) for rows in buffer.values()] == shares
    assert per_task_sample({"python": 3}, 13, seed=0, slots=3) == {"python": [0, 1, 2]}  # a task smaller than its slot


def test_the_buffer_is_the_same_for_the_same_seed_and_another_for_another():
    for sample in (reservoir_sample, per_task_sample):
        assert sample(SIZES, 12, seed=3) == sample(SIZES, 12, seed=3)
        assert sample(SIZES, 12, seed=3) != sample(SIZES, 12, seed=4)


def test_reservoir_sampling_keeps_every_earlier_example_with_the_same_probability():
    """Tasks of 10 and 30 examples, a buffer of 8: a quarter of it from the first task, on average."""
    sizes = {"python": 10, "javascript": 30}
    shares = [len(reservoir_sample(sizes, 8, seed)["python"]) / 8 for seed in range(2000)]
    assert abs(np.mean(shares) - 0.25) < 0.01


def test_a_buffer_larger_than_the_earlier_tasks_replays_all_of_them():
    sizes = {"python": 3, "javascript": 2}
    assert reservoir_sample(sizes, 10, seed=0) == {"python": [0, 1, 2], "javascript": [0, 1]}
    assert per_task_sample(sizes, 10, seed=0) == {"python": [0, 1, 2], "javascript": [0, 1]}


def test_a_per_task_share_that_shrinks_keeps_a_subset_of_itself():
    two, three = per_task_sample({"python": 30, "javascript": 20}, 12, 0), per_task_sample(SIZES, 12, 0)
    assert set(three["python"]) < set(two["python"])


def test_smoke_replay_trains_stage_2_on_its_24_examples_plus_the_10_of_the_buffer(smoke_run):
    _, results = smoke_run
    stages = results["strategies"]["replay"]["cost"]["stages"]
    assert (stages[1]["train"]["examples"], stages[2]["train"]["examples"]) == (24, 34)


# ---------------------------------------------------------------------------------------- ewc


def test_ewc_protects_what_a_later_stage_trains_again():
    ewc = get_strategy("ewc")
    assert retrained_later(ewc, THREE, 1) == retrained_later(ewc, THREE, 2) == Components(layers=("shared",))
    assert retrained_later(ewc, THREE, 3) == Components()  # nothing after the last stage
    assert retrained_later(get_strategy("full_finetune"), TWO, 1) == Components(base=True)
    assert retrained_later(get_strategy("task_specific"), TWO, 1) == Components()


def test_the_ewc_penalty_is_zero_at_the_anchor_and_the_fisher_weighted_squared_distance_elsewhere():
    anchor = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5])}
    fisher = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([4.0])}
    assert ewc_penalty(anchor, fisher, anchor) == 0
    moved = {"w": torch.tensor([2.0, 1.0]), "b": torch.tensor([1.0]), "other": torch.tensor([9.0])}
    assert ewc_penalty(moved, fisher, anchor) == pytest.approx(1 * 1 + 2 * 1 + 4 * 0.25)


def test_ewc_stores_a_non_negative_fisher_of_the_shared_layer_only_and_its_end_of_stage_values(smoke_run):
    out, _ = smoke_run
    stage1 = stage_folder(out, "ewc", 1)
    fisher, anchor = (load_file(str(stage1 / EWC_FILES[kind])) for kind in ("fisher", "anchor"))
    layer = load_file(str(stage1 / "layers" / "shared.safetensors"))
    assert fisher.keys() == anchor.keys() and len(fisher) == len(layer)
    assert not any("lora" in name for name in fisher)  # the adapter is never trained again: no penalty on it
    assert all((f >= 0).all() for f in fisher.values()) and sum(f.sum() for f in fisher.values()) > 0
    for name, value in anchor.items():
        (key,) = [key for key in layer if name.endswith(f".{key}")]
        assert np.array_equal(value, layer[key]) and fisher[name].shape == value.shape
    assert not any((stage_folder(out, "ewc", 2) / file).exists() for file in EWC_FILES.values())  # last stage


def shared_layer_drift(ewc_lambda: float, folder: Path) -> float:
    """How far stage 2 moves the shared layer from its stage-1 values (Euclidean, over every weight)."""
    (before, after), _ = train_two_stages(
        "ewc", CLConfig(ewc_lambda=ewc_lambda), folder, lambda m: m.layer_state("shared")
    )
    return float(torch.sqrt(sum((after[k] - before[k]).pow(2).sum() for k in before)))


def test_a_large_ewc_lambda_keeps_the_shared_layer_closer_to_its_stage_1_values(tmp_path):
    free, held = (shared_layer_drift(value, tmp_path / str(value)) for value in (0.0, 1e4))
    assert held < 0.1 * free


# ------------------------------------------------------------------------------ merge_then_add


def test_merge_then_add_folds_the_adapter_into_the_base_and_trains_only_the_next_one():
    model, strategy = (
        HybridModel(tiny_t5(), LoraSettings(r=2, alpha=6), LayerSettings()),
        get_strategy("merge_then_add"),
    )
    stage = prepare_stage(model, strategy, TWO, 1, seed=0)
    with torch.no_grad():
        for param in model.lora_parameters("python"):
            param.normal_()  # a trained adapter: B != 0
    wrapped = {m: model.base.get_submodule(m) for m in model.lora_modules("python")}
    before = {m: w.get_base_layer().weight.detach().clone() for m, w in wrapped.items()}
    deltas = {m: 3.0 * w.lora_B["python"].weight @ w.lora_A["python"].weight for m, w in wrapped.items()}  # alpha/r = 3
    strategy.after_stage(StageContext(model, stage, TWO, 0, {}, Path("."), {}))
    assert model.lora_names == ()
    for m, w in wrapped.items():
        torch.testing.assert_close(w.get_base_layer().weight, before[m] + deltas[m].detach())

    prepare_stage(model, strategy, TWO, 2, seed=0)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in model.lora_parameters("javascript")} and model.active == ("javascript", None)


def test_merge_then_add_evaluates_every_task_on_the_merged_base():
    for strategy in (get_strategy("merge_then_add"), get_strategy("olora")):
        assert {strategy.evaluation(TWO, s, task) for s in (0, 1, 2) for task in TWO} == {Use()}
        assert not strategy.freezes_finished_tasks(TWO) and strategy.freezes_finished_tasks(("python",))
        with pytest.raises(ValueError, match="stage 3 out of range"):
            strategy.evaluation(TWO, 3, "python")


def test_a_later_merge_changes_what_a_finished_task_is_evaluated_with(smoke_run):
    """Each stage saves only its own adapter; python's predictions after stage 2 come from a base that
    javascript's merge changed."""
    out, _ = smoke_run
    folders = [stage_folder(out, "merge_then_add", s) for s in (1, 2)]
    assert [sorted(p.name for p in (folder / "lora").iterdir()) for folder in folders] == [["python"], ["javascript"]]
    python = [(folder / "predictions" / "python.jsonl").read_text() for folder in folders]
    assert python[0] != python[1]


# -------------------------------------------------------------------------------------- olora


def test_the_orthogonality_penalty_is_zero_for_orthogonal_rows_and_the_squared_overlaps_otherwise():
    new = {"q": torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), "v": torch.tensor([[0.0, 0.0, 1.0]])}
    orthogonal = {"q": torch.tensor([[0.0, 0.0, 2.0]]), "v": torch.tensor([[3.0, 0.0, 0.0]])}
    assert orthogonality_penalty(new, [orthogonal]) == 0
    overlapping = {"q": torch.tensor([[1.0, 2.0, 0.0]]), "v": torch.tensor([[0.0, 0.0, 3.0]])}
    # q: A_new A_old^T = [[1], [2]] -> 1 + 4; v: [[3]] -> 9; summed over both earlier adapters
    assert orthogonality_penalty(new, [overlapping]) == 14
    assert orthogonality_penalty(new, [overlapping, orthogonal, overlapping]) == 28


def adapter_overlap(olora_lambda: float, folder: Path) -> float:
    """O-LoRA's penalty between the two trained adapters' A matrices (python's, then javascript's)."""
    _, state = train_two_stages("olora", CLConfig(olora_lambda=olora_lambda), folder, lambda model: None)
    python, javascript = state["lora_a"]
    return float(orthogonality_penalty(javascript, [python]))


def test_a_large_olora_lambda_makes_the_second_adapter_more_orthogonal_to_the_first(tmp_path):
    free, penalised = (adapter_overlap(value, tmp_path) for value in (0.0, 10.0))
    assert penalised < 0.01 * free


# ------------------------------------------------------------------------------------ restarts


def test_a_restart_rebuilds_each_baselines_state_and_reproduces_stage_2(smoke_assets, smoke_run, tmp_path, monkeypatch):
    """Stage 2 of every baseline deleted: the restart restores stage 1 without training it (merging its
    adapter again, reloading the Fisher, taking the A matrices) and trains stage 2 exactly as the
    uninterrupted run did: the same losses at every step, the same predictions."""
    out, uninterrupted = smoke_run
    shutil.copytree(out, tmp_path / "run")
    for name in BASELINES:
        shutil.rmtree(stage_folder(tmp_path / "run", name, 2))
    trained = []

    def counting_train_stage(model, loader, train, accelerator, desc="", **hooks):
        trained.append(desc)
        return train_stage(model, loader, train, accelerator, desc, **hooks)

    monkeypatch.setattr(continual, "train_stage", counting_train_stage)
    resumed = ContinualRun(smoke(smoke_assets), tmp_path / "run").run()
    assert trained == [f"{name} s2 seed0" for name in BASELINES]
    for name in BASELINES:
        again, before = (run["strategies"][name] for run in (resumed, uninterrupted))
        assert again["loss_curves"] == before["loss_curves"] and again["matrices"] == before["matrices"], name
        predictions = [stage_folder(run, name, 2) / "predictions" / "python.jsonl" for run in (tmp_path / "run", out)]
        assert predictions[0].read_text() == predictions[1].read_text(), name
