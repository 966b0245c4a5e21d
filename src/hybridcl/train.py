"""One training stage: the parameters that require grad, trained on one task's batches.

Built on `accelerate`, so the same loop runs on CPU, one GPU (bf16 autocast where supported), MPS
and several processes (`torchrun` / `accelerate launch`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import get_linear_schedule_with_warmup

from hybridcl.data.batching import EncodedSet, collator_for, make_loader
from hybridcl.errors import UserError
from hybridcl.faults import kill_point
from hybridcl.model.families import CAUSAL, base_kind
from hybridcl.model.hybrid import HybridModel
from hybridcl.progress import Progress
from hybridcl.settings import TrainConfig
from hybridcl.strategies import ExtraLoss, Stage, Strategy

CLEAR_REFS = "/proc/self/clear_refs"
LOG_EVERY = 10  # optimizer steps between loss read-backs (each one waits for the GPU)
# The settings an out-of-memory error suggests changing all change results, so a run folder refuses them.
NEW_VALUES_NEED_A_FRESH_OUT = "a run folder with finished stages takes new values only as a fresh --out"

logger = logging.getLogger(__name__)


class AcceleratorOutOfMemory(UserError):
    """Training or generation that does not fit in the accelerator's memory at the configured sizes."""


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


def checkpoint_gradients(model: HybridModel) -> None:
    """train.gradient_checkpointing: the base's blocks keep only their inputs in the forward pass and recompute
    the rest in the backward pass (transformers' own switch, non-reentrant, so a frozen base's inputs need no
    gradient). The same loss and gradients, for less activation memory and about a third more compute."""
    model.base.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})


def make_accelerator(train: TrainConfig, cpu: bool | None = None, tracking_dir: Path | None = None) -> Accelerator:
    """cpu=None: the GPU (CUDA or MPS) when there is one, else the CPU. On CUDA, float32 matmuls may use TF32.
    With `train.log_with` set, the accelerator holds that tracker, writing under `tracking_dir`."""
    # accelerate only sets up multi-process CPU runs (gloo) when told it is on the CPU.
    on_cpu = not (torch.cuda.is_available() or torch.backends.mps.is_available()) if cpu is None else cpu
    tracking = {} if train.log_with == "none" else {"log_with": train.log_with, "project_dir": tracking_dir}
    # accelerate refuses a precision other than the process's first; a bench or a test process trains in several
    AcceleratorState._reset_state()
    accelerator = Accelerator(
        cpu=on_cpu,
        mixed_precision=resolve_mixed_precision(train.mixed_precision, "cpu" if on_cpu else None),
        gradient_accumulation_steps=train.grad_accum_steps,
        **tracking,
    )
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return accelerator


def resolve_mixed_precision(setting: str, device_type: str | None = None, generation: bool = False) -> str:
    """The precision of training (or with `generation`, of greedy generation): `setting` as it is, or for
    "auto" bf16 where it pays, else "no". It pays on a CUDA GPU that supports bf16, and for training on a
    CPU with native bf16; CPU generation gains nothing measurable from it (benchmarks/README.md).
    `device_type`: where the run computes; None: where `make_accelerator` puts it by default."""
    if setting != "auto":
        return setting
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if device_type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return "bf16" if device_type == "cpu" and not generation and cpu_has_native_bf16() else "no"


def cpu_has_native_bf16() -> bool:
    """Whether the CPU has bf16 arithmetic instructions: AVX512_BF16 or AMX-BF16 (x86), BF16 or SVE-BF16
    (ARM), as torch's cpuinfo reads them. Without them torch emulates bf16 around float32 arithmetic."""
    capabilities = torch.cpu.get_capabilities()
    return any(capabilities.get(flag, False) for flag in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16"))


def stage_loader(
    encoded: EncodedSet, pad_token_id: int, train: TrainConfig, accelerator: Accelerator, *, kind: str
) -> DataLoader:
    """Length-grouped, shuffled batches of one stage, sharded over the processes, collated for a base of
    `kind` (hybridcl.model.families.base_kind). On CUDA the padding goes to a multiple of 8 (tensor-core
    shapes) and batches are pinned for asynchronous copies."""
    cuda = accelerator.device.type == "cuda"
    return make_loader(
        encoded,
        train.batch_size,
        shuffle=True,
        seed=train.seed,
        collator=collator_for(kind, pad_token_id, pad_to_multiple_of=8 if cuda else None),
        num_replicas=accelerator.num_processes,
        rank=accelerator.process_index,
        pin_memory=cuda,
    )


def train_stage(
    model: HybridModel,
    loader,
    train: TrainConfig,
    accelerator: Accelerator,
    desc: str = "train",
    extra_loss: ExtraLoss | None = None,
    on_losses: Callable[[int, list[float]], None] | None = None,
) -> StageStats:
    """Train `model`'s trainable parameters for `train.epochs` over `loader`; returns the stage's figures.

    `loader` yields dicts with input_ids / attention_mask / labels and is already sharded per process
    (its batch sampler takes num_replicas/rank), so it is not passed through `accelerator.prepare`.
    `extra_loss(batch, outputs)`, when given, is added to the model's loss at every step (a strategy's
    hook, hybridcl.strategies); the logged losses are the sums. `on_losses(first_step, losses)`, when
    given, gets the losses each time they are read back (every LOG_EVERY optimizer steps; steps count
    from 1): a tracker's live loss curve.
    """
    set_seed(train.seed)
    params = model.trainable_parameters()
    if not params:
        raise ValueError("train_stage: the model has no trainable parameters for this stage")
    steps_per_epoch = math.ceil(len(loader) / train.grad_accum_steps)
    total_steps = steps_per_epoch * train.epochs
    device = accelerator.device
    optimizer = torch.optim.AdamW(
        params, lr=train.lr, weight_decay=train.weight_decay, fused=device.type in ("cuda", "cpu")
    )
    warmup = train.warmup_steps or int(train.warmup_ratio * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    wrapped, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    stats = StageStats(trainable_params=sum(p.numel() for p in params))
    reset_peak_memory(device)
    wrapped.train()
    start = time.perf_counter()
    tokens = 0
    causal = base_kind(model.config) == CAUSAL
    step_losses, pending = [], []  # losses stay on the device until logged: no GPU sync every step
    bar = Progress(total_steps, f"train {desc}", "step", enabled=accelerator.is_local_main_process)
    debug = logger.isEnabledFor(logging.DEBUG) and accelerator.is_main_process
    step_start = time.perf_counter()

    def read_back(pending: list[torch.Tensor]) -> None:
        losses = accelerator.reduce(torch.stack(pending), "mean").tolist()
        if on_losses is not None:
            on_losses(len(stats.losses) + 1, losses)
        stats.losses.extend(losses)

    with bar, training_memory_hint(train, desc):  # the bar closes before an error line is printed
        for epoch in range(train.epochs):
            if hasattr(loader.batch_sampler, "set_epoch"):
                loader.batch_sampler.set_epoch(epoch)
            for batch in loader:
                target_tokens = int((batch["labels"] != -100).sum())  # counted on the host copy
                stats.examples += batch["input_ids"].shape[0]
                stats.target_tokens += target_tokens
                # a causal batch's attention mask covers its completions already; a seq2seq one, the sources only
                tokens += int(batch["attention_mask"].sum()) + (0 if causal else target_tokens)
                batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
                with accelerator.accumulate(wrapped):
                    # explicit: a model prepared at an earlier stage is not wrapped again, and the end of
                    # that stage took its autocast wrapper off
                    with accelerator.autocast():
                        loss = step_loss(wrapped, batch, extra_loss)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and train.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(params, train.max_grad_norm)
                    lr = scheduler.get_last_lr()[0]  # this step's (scheduler.step() moves on to the next)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                step_losses.append(loss.detach())
                if accelerator.sync_gradients:
                    pending.append(torch.stack(step_losses).mean())
                    step_losses = []
                    stats.steps += 1
                    bar.update(1)
                    if debug:
                        step_start = log_step(desc, stats.steps, total_steps, pending[-1], lr, step_start)
                    kill_point("train step")
                    if len(pending) == LOG_EVERY or stats.steps == total_steps:
                        read_back(pending)
                        pending = []
                        examples_per_s = stats.examples / (time.perf_counter() - start)
                        bar.note(f"loss {stats.losses[-1]:.3f}, {examples_per_s:.1f} examples/s")
    if pending:  # a loader shorter than its declared length
        read_back(pending)
    stats.wall_time_s = time.perf_counter() - start
    totals = accelerator.reduce(
        torch.tensor([tokens, stats.examples, stats.target_tokens], device=accelerator.device), "sum"
    ).tolist()
    tokens, stats.examples, stats.target_tokens = (int(v) for v in totals)
    stats.tokens_per_s = tokens / stats.wall_time_s if stats.wall_time_s else 0.0
    stats.peak_memory_kind, stats.peak_memory_bytes = peak_memory(accelerator.device)
    accelerator.unwrap_model(wrapped, keep_fp32_wrapper=False).eval()  # drop autocast wrappers before eval
    accelerator.free_memory()
    return stats


def log_step(desc: str, step: int, total: int, loss: torch.Tensor, lr: float, since: float) -> float:
    """The debug line of one optimizer step: this process's loss, the learning rate and the step's wall time.
    Reading the loss waits for the device every step, a cost only the debug level pays. Returns the time now."""
    now = time.perf_counter()
    logger.debug("train %s step %d/%d: loss %.4f, lr %.3g, %.3f s", desc, step, total, loss.item(), lr, now - since)
    return now


def step_loss(model, batch: dict, extra_loss: ExtraLoss | None) -> torch.Tensor:
    """The model's loss on `batch`, plus the extra term when there is one. The outputs (logits and all)
    are freed on return, as they were when the loop kept only `.loss`."""
    outputs = model(**batch)
    return outputs.loss if extra_loss is None else outputs.loss + extra_loss(batch, outputs)


@contextlib.contextmanager
def training_memory_hint(train: TrainConfig, desc: str):
    """Out of accelerator memory inside: one AcceleratorOutOfMemory line naming the settings to change."""
    try:
        yield
    except RuntimeError as error:
        if not is_out_of_memory(error):
            raise
        raise AcceleratorOutOfMemory(
            f"out of accelerator memory training {desc} at train.batch_size={train.batch_size} "
            f"(train.grad_accum_steps={train.grad_accum_steps}); lower train.batch_size and raise "
            f"train.grad_accum_steps by the same factor to keep the effective batch ({NEW_VALUES_NEED_A_FRESH_OUT})"
        ) from None


def is_out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA), or the RuntimeError other backends (MPS) raise for the same."""
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and "out of memory" in str(error)
    )


def free_cached_memory(device: torch.device) -> None:
    """Give the allocator's cached blocks back after an out-of-memory, so a retry starts clean."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak: CUDA's allocator statistics, or on Linux the process's RSS high-water mark."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    elif Path(CLEAR_REFS).exists():
        try:
            Path(CLEAR_REFS).write_text("5")  # proc(5): "5" resets the peak RSS (VmHWM) to the current RSS
        except OSError:
            pass


def peak_memory(device: torch.device) -> tuple[str, int]:
    """GPU: max_memory_allocated since the last reset. CPU/MPS: the process's peak RSS (since the last
    reset on Linux, since the start elsewhere)."""
    if device.type == "cuda":
        return "cuda_max_allocated", int(torch.cuda.max_memory_allocated(device))
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return "process_peak_rss", int(line.split()[1]) * 1024
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return "process_peak_rss", int(rss if sys.platform == "darwin" else rss * 1024)
