"""Classic continual-learning baselines, each one strategy on the hooks of `hybridcl.strategies.core`.

- `replay`, experience replay (Rolnick et al. 2019, "Experience Replay for Continual Learning"; the
  buffer filled by reservoir sampling, Vitter 1985, as in Chaudhry et al. 2019, "On Tiny Episodic
  Memories in Continual Learning"): Experiment 2's components; every later stage trains on its task's
  examples plus a seeded buffer of earlier tasks' examples.
- `ewc`, elastic weight consolidation (Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in
  neural networks"): Experiment 2's components; after each stage the diagonal Fisher of what later
  stages train again (the shared layer) is estimated and stored with its end-of-stage values, and later
  stages add `lambda/2 * sum F (theta - theta*)^2` to the loss.
- `merge_then_add`: a LoRA per task, merged into the base weights after its stage (what the PEFT
  maintainers suggest for sequential tasks); the next task trains a fresh adapter on the merged base.
- `olora`, O-LoRA (Wang et al. 2023, "Orthogonal Subspace Learning for Language Model Continual
  Learning"): merge_then_add plus `lambda * sum ||A_new A_old^T||^2` between the new adapter's A
  matrices and every earlier adapter's.

Each trains what its components say (`hybridcl params` counts them); the buffer and the Fisher are data
the method keeps, not parameters. Evaluation follows the protocol (each task with its own components),
except that after merging, a finished task's components are the merged base (`MergeThenAdd`).
Hyper-parameters come from the config's `cl` section (`Strategy.configured`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hybridcl.strategies.core import SHARED, Components, ExtraLoss, Sequential, StageContext, Strategy, Use

if TYPE_CHECKING:  # the registry loads without torch (the config, the report); the hooks import it as they run
    from torch import Tensor, nn

    from hybridcl.data.batching import EncodedSet
    from hybridcl.model.hybrid import HybridModel

EWC_FILES = {"fisher": "ewc_fisher.safetensors", "anchor": "ewc_anchor.safetensors"}  # in each stage's folder


@dataclass(frozen=True)
class Replay(Sequential):
    """Each stage trains on its task's training set plus `replay_size` examples of the earlier tasks' sets.

    The buffer is drawn with the run's seed: "reservoir" samples every earlier example with the same
    probability (reservoir sampling over the tasks in order), "per_task" gives each earlier task an equal
    share, "ring" gives each one replay_size // (the stream's tasks): the buffer CodeTask-CL's ER keeps.
    It is a function of the seed and the earlier training sets only, so a restarted run draws the same
    buffer without keeping it anywhere. Replayed examples train through the stage's active
    components (the new task's adapter and the shared layer), like the stage's own.
    """

    replay_size: int = 200
    replay_policy: str = "reservoir"

    def stage_data(self, context: StageContext) -> EncodedSet:
        from hybridcl.data.batching import concat_encoded, select_encoded

        replayed = [select_encoded(context.train_sets[task], rows) for task, rows in self.buffer(context).items()]
        return concat_encoded([super().stage_data(context), *replayed])

    def buffer(self, context: StageContext) -> dict[str, list[int]]:
        """Earlier task -> the indices of its training examples that stage `context.stage` replays."""
        earlier = context.tasks[: context.stage.index - 1]
        sizes = {task: len(context.train_sets[task]) for task in earlier}
        if not sizes:
            return {}
        if self.replay_policy == "reservoir":
            return reservoir_sample(sizes, self.replay_size, context.seed)
        slots = len(context.tasks) if self.replay_policy == "ring" else len(sizes)
        return per_task_sample(sizes, self.replay_size, context.seed, slots)


def reservoir_sample(sizes: Mapping[str, int], capacity: int, seed: int) -> dict[str, list[int]]:
    """Vitter's algorithm R over every example of the tasks in `sizes` (task -> examples), in order: the
    buffer the stream leaves, each example kept with probability capacity / examples."""
    rng = random.Random(seed)
    stream = [(task, index) for task, size in sizes.items() for index in range(size)]
    buffer = stream[:capacity]
    for seen, example in enumerate(stream[capacity:], start=capacity):
        slot = rng.randrange(seen + 1)
        if slot < capacity:
            buffer[slot] = example
    return {task: sorted(index for owner, index in buffer if owner == task) for task in sizes}


def per_task_sample(sizes: Mapping[str, int], capacity: int, seed: int, slots: int = 0) -> dict[str, list[int]]:
    """capacity // slots examples of each task (slots: the tasks in `sizes`, the first ones taking the
    remainder; or a fixed number, CodeTask-CL's ring buffer: one slot per task of the stream), each task's a
    prefix of its own seeded shuffle: a task's share that shrinks as tasks arrive keeps a subset of itself."""
    slots = slots or len(sizes)
    shares = [capacity // slots + (slots == len(sizes) and k < capacity % slots) for k in range(len(sizes))]
    buffer = {}
    for (task, size), share in zip(sizes.items(), shares):
        order = list(range(size))
        random.Random(f"{seed}:{task}").shuffle(order)
        buffer[task] = sorted(order[:share])
    return buffer


@dataclass(frozen=True)
class EWC(Sequential):
    """After each stage, the diagonal Fisher F of the parameters a later stage trains again, at their
    end-of-stage values theta* (the anchor); every later stage adds lambda/2 * sum F (theta - theta*)^2
    for each earlier stage. F and theta* go to the stage's folder (safetensors), which a restart reads."""

    ewc_lambda: float = 100.0
    ewc_fisher_examples: int = 1000  # 0: all the stage's training examples

    def extra_loss(self, context: StageContext) -> ExtraLoss | None:
        memories = context.state.get("ewc", [])
        if not memories:
            return None
        params = dict(context.model.named_parameters())
        return lambda batch, outputs: self.ewc_lambda / 2 * sum(ewc_penalty(params, **m) for m in memories)

    def after_stage(self, context: StageContext) -> None:
        params = parameters_of(context.model, retrained_later(self, context.tasks, context.stage.index))
        if not params:
            return  # no later stage trains what this one trained
        if context.origin == "restored":
            memory = load_memory(context.folder, next(iter(params.values())).device)
        else:
            memory = {
                "fisher": self.fisher(context, params),
                "anchor": {n: p.detach().clone() for n, p in params.items()},
            }
            if context.main_process:
                save_memory(memory, context.folder)
        context.state.setdefault("ewc", []).append(memory)

    def fisher(self, context: StageContext, params: dict[str, nn.Parameter]) -> dict[str, Tensor]:
        """The diagonal Fisher over `ewc_fisher_examples` of the stage's training examples (a seeded sample)."""
        data = self.stage_data(context)
        count = min(self.ewc_fisher_examples or len(data), len(data))
        rows = sorted(random.Random(context.seed).sample(range(len(data)), count))
        return diagonal_fisher(context.model, params, [data[i] for i in rows])


def retrained_later(strategy: Strategy, tasks: tuple[str, ...], index: int) -> Components:
    """What stage `index` trains that a later stage trains again: what EWC protects."""
    now, later = strategy.stage(tasks, index).trainable, strategy.stages(tasks)[index:]
    return Components(
        loras=tuple(name for name in now.loras if any(name in s.trainable.loras for s in later)),
        layers=tuple(name for name in now.layers if any(name in s.trainable.layers for s in later)),
        base=now.base and any(s.trainable.base for s in later),
    )


def parameters_of(model: HybridModel, components: Components) -> dict[str, nn.Parameter]:
    """The parameters of `components`, by their names in `model`."""
    params = [p for name in components.loras for p in model.lora_parameters(name)]
    params += [p for name in components.layers for p in model.layer_parameters(name)]
    params += model.base_parameters() if components.base else []
    wanted = {id(p) for p in params}
    return {name: p for name, p in model.named_parameters() if id(p) in wanted}


def diagonal_fisher(model: HybridModel, params: dict[str, nn.Parameter], examples: Sequence[dict]) -> dict[str, Tensor]:
    """Mean over `examples` of the squared gradient of each one's log-likelihood log p(target | source)
    (summed over its target tokens), one example at a time, without dropout. `params` must require grad
    (the runner's prepare_stage left the stage's trainable set so)."""
    import torch

    from hybridcl.data.batching import collator_for
    from hybridcl.model.families import base_kind

    device = next(iter(params.values())).device
    collate = collator_for(base_kind(model.config), pad_token_id=0)  # one example: no padding
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    training = model.training
    model.eval()
    for example in examples:
        batch = {key: value.to(device) for key, value in collate([example]).items()}
        mean_nll = model(**batch).loss
        grads = torch.autograd.grad(-mean_nll * int((batch["labels"] != -100).sum()), list(params.values()))
        for total, grad in zip(fisher.values(), grads):
            total += grad.pow(2)
    model.train(training)
    return {name: total / len(examples) for name, total in fisher.items()}


def ewc_penalty(params: Mapping[str, Tensor], fisher: Mapping[str, Tensor], anchor: Mapping[str, Tensor]) -> Tensor:
    """sum F (theta - theta*)^2 over the parameters `fisher` names: 0 at the anchor."""
    return sum((fisher[name] * (params[name] - anchor[name]).pow(2)).sum() for name in fisher)


def save_memory(memory: dict[str, dict[str, Tensor]], folder: Path) -> None:
    from safetensors.torch import save_file

    from hybridcl.atomic import atomic_path

    for kind, tensors in memory.items():
        with atomic_path(folder / EWC_FILES[kind]) as tmp:
            save_file({name: t.contiguous() for name, t in tensors.items()}, str(tmp))


def load_memory(folder: Path, device) -> dict[str, dict[str, Tensor]]:
    from safetensors.torch import load_file

    return {kind: load_file(str(folder / file), device=str(device)) for kind, file in EWC_FILES.items()}


@dataclass(frozen=True)
class MergeThenAdd(Sequential):
    """After its stage, a task's adapter is merged into the base weights (W <- W + alpha/r * B A, then the
    adapter is deleted: PEFT's merge_and_unload for one adapter); the next task trains a fresh adapter on
    the merged base.

    Evaluation: once merged, a finished task's components are the merged base, so after stage s every task
    runs on the base with the adapters of tasks 1..s merged in (and its layer, when the strategy has
    layers), with no adapter on top; before training (stage 0) on the base itself. A later merge changes
    that base: forgetting is measurable. On restart `after_stage` runs again for each restored stage, in
    order, and merges the adapter the stage saved, so the merged base is rebuilt exactly.
    """

    def evaluation(self, tasks: Sequence[str], stage: int, task: str) -> Use:
        return Use(layer=super().evaluation(tasks, stage, task).layer)  # the adapters are in the base

    def freezes_finished_tasks(self, tasks: Sequence[str]) -> bool:
        return self.num_stages(tasks) == 1  # every later stage merges into the base that evaluates them

    def after_stage(self, context: StageContext) -> None:
        for name in context.stage.trainable.loras:
            context.model.merge_lora(name)


@dataclass(frozen=True)
class OLoRA(MergeThenAdd):
    """merge_then_add plus O-LoRA's orthogonality loss, olora_lambda * sum over earlier adapters and wrapped
    modules of ||A_new A_old^T||^2: it pushes the new adapter's update into a subspace orthogonal to the
    earlier ones' (rows of A), so it disturbs what they added to the merged base less.

    O-LoRA's model is a frozen base plus every adapter so far, summed: merge_then_add's merged base. The
    squared entries are the paper's L_orth; its code sums absolute values, with lambda_1 = 0.5 (the default
    here) and its L2 term on the new adapter at lambda_2 = 0 (left out)."""

    olora_lambda: float = 0.5

    def extra_loss(self, context: StageContext) -> ExtraLoss | None:
        earlier = context.state.get("lora_a", [])
        if not earlier:
            return None
        (name,) = context.stage.trainable.loras
        new = lora_a(context.model, name)
        return lambda batch, outputs: self.olora_lambda * orthogonality_penalty(new, earlier)

    def after_stage(self, context: StageContext) -> None:
        for name in context.stage.trainable.loras:  # the A matrices, before the merge deletes the adapter
            context.state.setdefault("lora_a", []).append(
                {m: a.detach().clone() for m, a in lora_a(context.model, name).items()}
            )
        super().after_stage(context)


def lora_a(model: HybridModel, name: str) -> dict[str, Tensor]:
    """Adapter `name`'s A matrices (r x in_features), by the module they wrap."""
    return {module: model.base.get_submodule(module).lora_A[name].weight for module in model.lora_modules(name)}


def orthogonality_penalty(new: Mapping[str, Tensor], earlier: Sequence[Mapping[str, Tensor]]) -> Tensor:
    """O-LoRA's L_orth: sum over the earlier adapters and the wrapped modules of the squared entries of
    A_new A_old^T; 0 exactly when every row of each new A is orthogonal to every row of the earlier ones."""
    return sum((a @ old[module].T).pow(2).sum() for old in earlier for module, a in new.items())


BASELINES = (
    Replay(
        "replay",
        "experience replay on Experiment 2's components (a LoRA per task; one shared layer trained at every "
        "stage, where forgetting happens): each later stage also trains on a seeded buffer of cl.replay_size "
        "earlier-task examples (data, not parameters)",
        layer=SHARED,
    ),
    EWC(
        "ewc",
        "elastic weight consolidation on Experiment 2's components: later stages pull the shared layer "
        "towards its end-of-stage values, weighted by its diagonal Fisher (Fisher and anchor stored per "
        "stage, not counted as parameters)",
        layer=SHARED,
    ),
    MergeThenAdd(
        "merge_then_add",
        "a LoRA per task, merged into the base after its stage; the next task trains a new adapter on the "
        "merged base, which evaluates every finished task",
    ),
    OLoRA(
        "olora",
        "O-LoRA: merge_then_add plus an orthogonality penalty between the new adapter's A matrices and "
        "every earlier adapter's",
    ),
)
