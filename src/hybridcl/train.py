"""One training stage: the parameters that require grad, trained on one task's batches.

Built on `accelerate`, so the same loop runs on CPU, one GPU (bf16 autocast where supported), MPS
and several processes (`torchrun` / `accelerate launch`).
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import asdict, dataclass, field

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from hybridcl.config import TrainConfig
from hybridcl.model.hybrid import HybridModel
from hybridcl.strategies import Stage, Strategy


@dataclass
class StageStats:
    losses: list[float] = field(default_factory=list)  # one per optimizer step, averaged over processes
    steps: int = 0
    examples: int = 0
    target_tokens: int = 0
    wall_time_s: float = 0.0
    tokens_per_s: float = 0.0  # source + target tokens per second, all processes
    peak_memory_bytes: int = 0
    peak_memory_kind: str = ""  # "cuda_max_allocated" or "process_peak_rss"
    trainable_params: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def prepare_stage(model: HybridModel, strategy: Strategy, tasks: tuple[str, ...], index: int, seed: int) -> Stage:
    """Create the stage's missing components, activate them and make exactly its trainable set trainable.

    Each new component is initialised from a seed derived from its role (first LoRA, first layer, ...),
    so two strategies that share a prefix create identical components under different names.
    """
    stage = strategy.stage(tasks, index)
    role_of = {(role.split(":")[0], name): role for role, name in strategy.roles(tasks).items()}
    for name in (stage.active.lora, *stage.trainable.loras):
        if name is not None and name not in model.lora_names:
            model.add_task_lora(name, seed=component_seed(seed, role_of["lora", name]))
    for name in (stage.active.layer, *stage.trainable.layers):
        if name is not None and name not in model.layer_names:
            model.add_layer(name, seed=component_seed(seed, role_of["layer", name]))
    model.activate(stage.active.lora, stage.active.layer)
    model.set_trainable(loras=stage.trainable.loras, layers=stage.trainable.layers, base=stage.trainable.base)
    return stage


def component_seed(seed: int, role: str) -> int:
    """A stable per-role seed (Python's hash() of a str is salted per process, so not that)."""
    return seed * 1_000_003 + int.from_bytes(role.encode(), "little") % 1_000_003


def make_accelerator(train: TrainConfig) -> Accelerator:
    # accelerate only sets up multi-process CPU runs (gloo) when told it is on the CPU.
    on_cpu = not (torch.cuda.is_available() or torch.backends.mps.is_available())
    return Accelerator(cpu=on_cpu, mixed_precision=_mixed_precision(train.mixed_precision),
                       gradient_accumulation_steps=train.grad_accum_steps)


def _mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def train_stage(model: nn.Module, loader, train: TrainConfig, accelerator: Accelerator,
                desc: str = "train") -> StageStats:
    """Train `model`'s trainable parameters for `train.epochs` over `loader`; returns the stage's figures.

    `loader` yields dicts with input_ids / attention_mask / labels and is already sharded per process
    (its batch sampler takes num_replicas/rank), so it is not passed through `accelerator.prepare`.
    """
    set_seed(train.seed)
    params = trainable_parameters(model)
    if not params:
        raise ValueError("train_stage: the model has no trainable parameters for this stage")
    steps_per_epoch = math.ceil(len(loader) / train.grad_accum_steps)
    total_steps = steps_per_epoch * train.epochs
    optimizer = torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay,
                                  fused=accelerator.device.type == "cuda")
    scheduler = get_linear_schedule_with_warmup(optimizer, int(train.warmup_ratio * total_steps), total_steps)
    wrapped, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    stats = StageStats(trainable_params=sum(p.numel() for p in params))
    reset_peak_memory(accelerator.device)
    wrapped.train()
    start = time.perf_counter()
    tokens = 0
    bar = tqdm(total=total_steps, desc=desc, disable=not accelerator.is_local_main_process, dynamic_ncols=True)
    for epoch in range(train.epochs):
        if hasattr(loader.batch_sampler, "set_epoch"):
            loader.batch_sampler.set_epoch(epoch)
        step_losses = []
        for batch in loader:
            batch = {key: value.to(accelerator.device) for key, value in batch.items()}
            with accelerator.accumulate(wrapped):
                loss = wrapped(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and train.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(params, train.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            step_losses.append(loss.detach())
            stats.examples += batch["input_ids"].shape[0]
            stats.target_tokens += int((batch["labels"] != -100).sum())
            tokens += int(batch["attention_mask"].sum()) + int((batch["labels"] != -100).sum())
            if accelerator.sync_gradients:
                stats.losses.append(accelerator.reduce(torch.stack(step_losses).mean(), "mean").item())
                stats.steps += 1
                step_losses = []
                elapsed = time.perf_counter() - start
                bar.set_postfix(loss=f"{stats.losses[-1]:.3f}", ex_s=f"{stats.examples / elapsed:.1f}")
                bar.update(1)
    bar.close()
    stats.wall_time_s = time.perf_counter() - start
    totals = accelerator.reduce(torch.tensor([tokens, stats.examples, stats.target_tokens],
                                             device=accelerator.device), "sum").tolist()
    tokens, stats.examples, stats.target_tokens = (int(v) for v in totals)
    stats.tokens_per_s = tokens / stats.wall_time_s if stats.wall_time_s else 0.0
    stats.peak_memory_kind, stats.peak_memory_bytes = peak_memory(accelerator.device)
    accelerator.unwrap_model(wrapped, keep_fp32_wrapper=False).eval()  # drop autocast wrappers before eval
    accelerator.free_memory()
    return stats


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[str, int]:
    """GPU: max_memory_allocated since the last reset. CPU/MPS: the process's peak RSS since it started."""
    if device.type == "cuda":
        return "cuda_max_allocated", int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return "process_peak_rss", int(rss if sys.platform == "darwin" else rss * 1024)
