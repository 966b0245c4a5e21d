"""One training stage on a tiny T5: what trains, what stays bit-identical, that loss falls, DDP agreement."""

from __future__ import annotations

import dataclasses
import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from hybridcl.data.batching import EncodedSet, RaggedIds, Seq2SeqCollator, concat_encoded, make_loader
from hybridcl.model.hybrid import HybridModel
from hybridcl.settings import LayerSettings, LoraSettings, TrainConfig
from hybridcl.strategies import STRATEGIES, get_strategy
from hybridcl.train import (
    cpu_has_native_bf16,
    make_accelerator,
    peak_memory,
    prepare_stage,
    reset_peak_memory,
    resolve_mixed_precision,
    train_stage,
)
from tiny_models import TINY, tiny_t5

TASKS = ("t1", "t2")
FAST = TrainConfig(epochs=1, batch_size=4, lr=5e-3, seed=0)


def copy_task(n: int, offset: int, seed: int) -> EncodedSet:
    """Target = source shifted by `offset` in the vocabulary: learnable, and different per task."""
    g = torch.Generator().manual_seed(seed)
    sources = [
        torch.randint(2, 30, (int(torch.randint(3, 9, (1,), generator=g)),), generator=g).tolist() for _ in range(n)
    ]
    targets = [[token + offset for token in source] + [TINY.eos_token_id] for source in sources]
    return EncodedSet(RaggedIds.from_lists(sources), RaggedIds.from_lists(targets))


def loader(data: EncodedSet, batch_size: int = 4, num_replicas: int = 1, rank: int = 0):
    return make_loader(
        data,
        batch_size,
        shuffle=True,
        seed=0,
        collator=Seq2SeqCollator(TINY.pad_token_id),
        num_replicas=num_replicas,
        rank=rank,
    )


DATA = {"t1": copy_task(16, 2, seed=1), "t2": copy_task(16, 30, seed=2)}


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(before: dict, model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())}


def run_stage(model: HybridModel, strategy_name: str, index: int, train: TrainConfig = FAST):
    strategy = get_strategy(strategy_name)
    stage = prepare_stage(model, strategy, TASKS, index, seed=0)
    data = DATA[stage.tasks[0]] if len(stage.tasks) == 1 else concat_encoded([DATA[t] for t in stage.tasks])
    return stage, train_stage(model, loader(data), train, make_accelerator(train))


def declared_names(model: HybridModel, stage) -> set[str]:
    ids = {id(p) for name in stage.trainable.loras for p in model.lora_parameters(name)}
    ids |= {id(p) for name in stage.trainable.layers for p in model.layer_parameters(name)}
    if stage.trainable.base:
        ids |= {id(p) for p in model.base_parameters()}
    return {name for name, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("strategy_name", list(STRATEGIES))
def test_only_the_declared_parameters_change_at_each_stage(strategy_name):
    model = HybridModel(tiny_t5(), LoraSettings(r=4, alpha=8), LayerSettings(init="random"))
    for index in range(1, get_strategy(strategy_name).num_stages(TASKS) + 1):
        prepare_stage(model, get_strategy(strategy_name), TASKS, index, seed=0)  # create before snapshot
        before = snapshot(model)
        stage, stats = run_stage(model, strategy_name, index)
        declared = declared_names(model, stage)
        assert declared, "every stage trains something"
        assert changed(before, model) == declared, f"{strategy_name} stage {index}"
        assert stats.trainable_params == sum(p.numel() for n, p in model.named_parameters() if n in declared)


@pytest.mark.parametrize("strategy_name", ["task_specific", "lora_only"])
def test_training_task_2_leaves_task_1_components_bit_identical(strategy_name):
    model = HybridModel(tiny_t5(), LoraSettings(r=4, alpha=8))
    run_stage(model, strategy_name, 1)
    task1 = {**model.lora_state("t1"), **(model.layer_state("t1") if "t1" in model.layer_names else {})}
    assert any(t.abs().sum() > 0 for t in model.lora_state("t1").values())
    run_stage(model, strategy_name, 2)
    after = {**model.lora_state("t1"), **(model.layer_state("t1") if "t1" in model.layer_names else {})}
    assert task1.keys() == after.keys()
    assert all(torch.equal(task1[key], after[key]) for key in task1)


@pytest.mark.parametrize("strategy_name, moves", [("shared_layer", True), ("shared_layer_frozen", False)])
def test_shared_layer_trains_at_stage_2_only_when_not_frozen(strategy_name, moves):
    model = HybridModel(tiny_t5(), LoraSettings(r=4, alpha=8))
    run_stage(model, strategy_name, 1)
    after_stage_1 = model.layer_state("shared")
    run_stage(model, strategy_name, 2)
    after_stage_2 = model.layer_state("shared")
    same = all(torch.equal(after_stage_1[key], after_stage_2[key]) for key in after_stage_1)
    assert same is not moves


def test_loss_falls_on_a_learnable_task():
    model = HybridModel(tiny_t5(), LoraSettings(r=8, alpha=16))
    train = TrainConfig(epochs=12, batch_size=4, lr=1e-2, warmup_ratio=0.1, seed=0)
    _, stats = run_stage(model, "task_specific", 1, train)
    assert stats.steps == 12 * 4 and len(stats.losses) == stats.steps
    first, last = sum(stats.losses[:4]) / 4, sum(stats.losses[-4:]) / 4
    assert last < 0.8 * first, (first, last)
    assert stats.examples == 12 * 16 and stats.tokens_per_s > 0 and stats.peak_memory_bytes > 0


def test_warmup_steps_take_the_place_of_the_ratio(monkeypatch):
    import hybridcl.train

    real, seen = hybridcl.train.get_linear_schedule_with_warmup, []
    monkeypatch.setattr(
        hybridcl.train, "get_linear_schedule_with_warmup", lambda opt, w, t: seen.append((w, t)) or real(opt, w, t)
    )
    for train in (
        TrainConfig(epochs=1, batch_size=4, warmup_steps=3),
        TrainConfig(epochs=2, batch_size=4, warmup_ratio=0.5),
    ):
        run_stage(HybridModel(tiny_t5(), LoraSettings(r=4, alpha=8)), "lora_only", 1, train)
    assert seen == [(3, 4), (4, 8)]  # 16 examples: 4 steps an epoch


def test_gradient_accumulation_takes_fewer_optimizer_steps():
    model = HybridModel(tiny_t5(), LoraSettings(r=4, alpha=8))
    _, stats = run_stage(model, "lora_only", 1, TrainConfig(epochs=1, batch_size=4, grad_accum_steps=2, seed=0))
    assert stats.steps == 2 and stats.examples == 16


def test_branched_strategies_create_identical_components_under_different_names():
    a = HybridModel(tiny_t5(), LoraSettings(r=4, alpha=8), LayerSettings(init="random"))
    b = HybridModel(tiny_t5(), LoraSettings(r=4, alpha=8), LayerSettings(init="random"))
    prepare_stage(a, get_strategy("task_specific"), TASKS, 1, seed=3)
    prepare_stage(b, get_strategy("shared_layer"), TASKS, 1, seed=3)
    layer_a, layer_b = a.layer_state("t1"), b.layer_state("shared")
    assert all(torch.equal(layer_a[key], layer_b[key]) for key in layer_a)
    lora_a, lora_b = a.lora_state("t1"), b.lora_state("t1")
    assert all(torch.equal(lora_a[key], lora_b[key]) for key in lora_a)


WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.slow
def test_two_process_torchrun_keeps_both_ranks_identical(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(WORKER),
        str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    (params0, meta0), (params1, meta1) = (read_weights(tmp_path / f"rank{rank}.safetensors") for rank in (0, 1))
    assert meta0["world_size"] == meta1["world_size"] == "2"
    assert meta0["changed"] == "True" and params0.keys() == params1.keys()
    assert all(torch.equal(params0[key], params1[key]) for key in params0)
    assert meta0["examples"] == "16"  # both ranks together saw the whole task once


def read_weights(path: Path):
    with safe_open(str(path), "pt") as file:
        return {key: file.get_tensor(key) for key in file.keys()}, file.metadata()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc only")
def test_cpu_peak_memory_can_be_reset_between_measurements():
    cpu = torch.device("cpu")
    reset_peak_memory(cpu)
    big = mmap.mmap(-1, 64 * 2**20)  # 64 MiB of its own mapping: unmapped (and out of the RSS) on close,
    big.write(b"x" * len(big))  # whatever the allocator keeps of the earlier tests' memory
    _, with_big = peak_memory(cpu)
    big.close()
    reset_peak_memory(cpu)
    _, after_reset = peak_memory(cpu)
    assert with_big - after_reset > 32 * 2**20


@pytest.mark.parametrize(
    "capabilities, native",
    [
        ({"architecture": "x86_64", "avx512_f": True, "avx512_bf16": True}, True),
        ({"architecture": "x86_64", "amx_bf16": True}, True),
        ({"architecture": "x86_64", "avx512_f": True, "avx512_bf16": False}, False),  # AVX512 alone emulates bf16
        ({"architecture": "arm64", "neon": True, "bf16": True}, True),
        ({"architecture": "arm64", "neon": True}, False),
    ],
)
def test_auto_precision_trains_in_bf16_on_cpus_with_native_bf16(monkeypatch, capabilities, native):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert cpu_has_native_bf16() is native
    assert resolve_mixed_precision("auto", "cpu") == ("bf16" if native else "no")
    assert resolve_mixed_precision("auto", "cpu", generation=True) == "no"  # CPU generation does not gain
    assert resolve_mixed_precision("bf16", "cpu", generation=True) == "bf16"  # a setting is taken as it is
    assert resolve_mixed_precision("no", "cpu") == "no" and resolve_mixed_precision("auto", "mps") == "no"
    assert make_accelerator(FAST, cpu=True).mixed_precision == ("bf16" if native else "no")


def test_every_stage_trains_in_the_configured_precision():
    """A model prepared at stage 1 is not wrapped again at stage 2; its steps must still run under autocast."""
    model = HybridModel(tiny_t5(), LoraSettings(r=4, alpha=8))
    train = dataclasses.replace(FAST, mixed_precision="bf16")
    seen = set()

    def record(module, args, output):
        if isinstance(module, torch.nn.Linear) and module.training:
            seen.add(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        for index in (1, 2):
            seen.clear()
            run_stage(model, "task_specific", index, train)
            assert seen == {torch.bfloat16}, f"stage {index} trained in {seen}"
    finally:
        handle.remove()


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="Linux's /proc/cpuinfo")
def test_native_bf16_detection_agrees_with_the_kernels_cpu_flags():
    words = set(Path("/proc/cpuinfo").read_text().split())
    assert cpu_has_native_bf16() is bool(words & {"avx512_bf16", "amx_bf16", "bf16", "svebf16"})
