"""The strategies of docs/design.md section 1: which components exist, train and evaluate, stage by stage.

A strategy is a small frozen dataclass that answers, for the ordered task keys (e.g. ("python",
"javascript")):

- `components(tasks)`: every component it creates: LoRA adapter names, layer names, whether the base
  itself trains (`full_finetune`);
- `stages(tasks)`: the training stages 1..S (S = N tasks; `joint` has one stage over all tasks), each
  with the data it trains on, the components trained (`trainable`) and those active in the forward
  pass (`active`, a `Use`);
- `evaluation(tasks, stage, task)`: the components used to evaluate `task` after `stage` (0..S):
  task j's components if j <= s, task s's components if j > s (zero-shot transfer), and at stage 0
  task j's fresh components (with identity init and LoRA's zero B: the base model itself);
- `stage_signature(tasks, stage)`: what stages 1..stage do, with components named by role instead
  of by name, so that the runner can see that two strategies share a prefix (`shared_prefix`): e.g.
  `task_specific`, `shared_layer` and `shared_layer_frozen` all train a fresh LoRA + a fresh layer
  on task 1 at stage 1. `roles(tasks)` maps those role ids back to each strategy's names;
- `freezes_finished_tasks(tasks)`: whether no stage trains what evaluates a task finished before it
  (then forgetting is 0 by design);
- `task_identity_at_inference(tasks)`: whether the evaluation picks each task's components by the
  task's identity (the tasks do not all run through the same components after the last stage).

All of these derive from two answers per task k: `use(tasks, k)`, the components of task k (trained and
evaluated together), and `trains(tasks, k)`, what the stage of task k trains. `Sequential` gives both
from a few options (a LoRA adapter or not; a per-task, shared or no layer; the stages a shared layer
trains at; the whole base). A new strategy = one `Sequential(...)` (or a small subclass) + one line in
`hybridcl.strategies.STRATEGIES`.

A method that is more than a choice of components (replay, a regularising loss, merging an adapter
after its stage) is one subclass that overrides some of three hooks, each given a `StageContext` (the
model, the stage, the task order, the seed, every task's training set, the stage's folder and a
`state` dict the runner keeps across the stages of one strategy and seed):

- `stage_data(context)`: the examples the stage trains on. Default: the stage's tasks' training sets,
  concatenated when there are several (`joint`).
- `extra_loss(context)`: None (the default: the training loop is unchanged), or a function
  `(batch, outputs) -> scalar tensor` added to the model's loss at every training step of the stage.
- `after_stage(context)`: runs once the stage's components are trained and saved (before the
  evaluation), and again when a finished stage is restored on restart or copied from another
  strategy, so that the method can rebuild `state`. It may write its own files to `context.folder`.
  Default: nothing.

A strategy that overrides a hook adds its class and settings to its `stage_signature`: it shares
stages only with strategies of the same class and settings, never with one that keeps the defaults.
Its settings come from the config's `cl` section (`configured`). The classic continual-learning
baselines built this way (replay, ewc, olora, merge_then_add) are in `hybridcl.strategies.baselines`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the report imports this module, and loads without torch
    from hybridcl.data.batching import EncodedSet
    from hybridcl.model.hybrid import HybridModel


@dataclass(frozen=True)
class Use:
    """Components used in a forward pass: a LoRA adapter and a layer (None = not used)."""

    lora: str | None = None
    layer: str | None = None


@dataclass(frozen=True)
class Components:
    """A set of components: LoRA adapter names, layer names, and whether the base model's own weights."""

    loras: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    base: bool = False

    @property
    def empty(self) -> bool:
        return not (self.loras or self.layers or self.base)


@dataclass(frozen=True)
class Stage:
    """Training stage `index` (1-based): data of `tasks`, `trainable` gets gradients, `active` runs."""

    index: int
    tasks: tuple[str, ...]
    trainable: Components
    active: Use


SHARED = "shared"
JOINT = "joint"
HOOKS = ("stage_data", "extra_loss", "after_stage")
ExtraLoss = Callable[[dict, Any], Any]  # (the step's batch, the model's outputs) -> a scalar tensor


@dataclass(frozen=True)
class StageContext:
    """What a hook sees of stage `stage` (1..S) of one strategy and seed. `state` is the same dict at
    every stage of that strategy and seed (the runner starts it empty): the method's own across stages."""

    model: HybridModel
    stage: Stage
    tasks: tuple[str, ...]  # the task order
    seed: int
    train_sets: Mapping[str, EncodedSet]  # every task's training set, by task key
    folder: Path  # the stage's folder: the method may save (and, on restore, read) its own files there
    state: dict
    main_process: bool = True  # under torchrun only the main process should write files
    origin: str = "trained"  # for after_stage: "trained" now, "restored" from an earlier run, or "copied"


@dataclass(frozen=True)
class Strategy:
    """Base class: a sequential strategy, one stage per task, defined by `use(tasks, k)` and `trains(tasks, k)`."""

    name: str
    description: str = ""

    # -- to define in each strategy ----------------------------------------------------------

    def use(self, tasks: tuple[str, ...], k: int) -> Use:
        """The components of task k (0-based): trained and evaluated together."""
        raise NotImplementedError

    def trains(self, tasks: tuple[str, ...], k: int) -> Components:
        """What is trained at the stage of task k (0-based)."""
        raise NotImplementedError

    # -- derived ---------------------------------------------------------------------------

    def num_stages(self, tasks: Sequence[str]) -> int:
        return len(_tasks(tasks))

    def stages(self, tasks: Sequence[str]) -> list[Stage]:
        tasks = _tasks(tasks)
        return [Stage(k + 1, (tasks[k],), self.trains(tasks, k), self.use(tasks, k)) for k in range(len(tasks))]

    def stage(self, tasks: Sequence[str], index: int) -> Stage:
        stages = self.stages(tasks)
        if not 1 <= index <= len(stages):
            raise ValueError(f"{self.name}: stage {index} out of range 1..{len(stages)}")
        return stages[index - 1]

    def components(self, tasks: Sequence[str]) -> Components:
        """Every component the strategy creates, in order of first use."""
        tasks = _tasks(tasks)
        uses = [self.use(tasks, k) for k in range(len(tasks))]
        trained = [stage.trainable for stage in self.stages(tasks)]
        return Components(
            loras=_unique([u.lora for u in uses] + [n for t in trained for n in t.loras]),
            layers=_unique([u.layer for u in uses] + [n for t in trained for n in t.layers]),
            base=any(t.base for t in trained),
        )

    def evaluation(self, tasks: Sequence[str], stage: int, task: str) -> Use:
        """Components that evaluate `task` after `stage` (0 = before training)."""
        tasks = _tasks(tasks)
        if task not in tasks:
            raise ValueError(f"{self.name}: unknown task {task!r}; tasks are {list(tasks)}")
        if not 0 <= stage <= self.num_stages(tasks):
            raise ValueError(f"{self.name}: stage {stage} out of range 0..{self.num_stages(tasks)}")
        j = tasks.index(task)
        if stage == 0 or j < stage:
            return self.use(tasks, j)  # its own components (fresh at stage 0)
        return self.use(tasks, stage - 1)  # not trained yet: the latest task's components

    def freezes_finished_tasks(self, tasks: Sequence[str]) -> bool:
        """Whether no stage trains a component that evaluates a task finished before that stage: then a
        finished task's scores never change (F = BWT = 0). `joint` qualifies: nothing trains after its stage."""
        tasks = _tasks(tasks)
        stages = self.stages(tasks)
        for stage in stages[1:]:
            done = stage.index - 1
            finished = [key for earlier in stages[:done] for key in earlier.tasks]
            if any(_trains_part_of(stage.trainable, self.evaluation(tasks, done, key)) for key in finished):
                return False
        return True

    def task_identity_at_inference(self, tasks: Sequence[str]) -> bool:
        """Whether evaluation picks each task's own components by the task's identity: after the last stage,
        not every task runs through the same components. The identity is then an input that a deployed model
        would need to be given."""
        tasks = _tasks(tasks)
        last = self.num_stages(tasks)
        return len({self.evaluation(tasks, last, task) for task in tasks}) > 1

    def roles(self, tasks: Sequence[str]) -> dict[str, str]:
        """Role id -> component name: "lora:0" is the first LoRA adapter the strategy uses, etc."""
        components = self.components(tasks)
        roles = {f"lora:{i}": name for i, name in enumerate(components.loras)}
        roles.update({f"layer:{i}": name for i, name in enumerate(components.layers)})
        return roles

    def stage_signature(self, tasks: Sequence[str], stage: int) -> tuple:
        """Hashable description of stages 1..`stage`: data, trained and active components by role.

        Two strategies with equal signatures (and the same config and seed) reach the same state
        after `stage`, up to the names of their components (see `roles`).
        """
        tasks = _tasks(tasks)
        role_of = {name: role for role, name in self.roles(tasks).items() if role.startswith("lora:")}
        layer_role_of = {name: role for role, name in self.roles(tasks).items() if role.startswith("layer:")}
        signature = []
        for s in self.stages(tasks)[:stage]:
            signature.append(
                (
                    s.tasks,
                    tuple(role_of[n] for n in s.trainable.loras),
                    tuple(layer_role_of[n] for n in s.trainable.layers),
                    s.trainable.base,
                    role_of.get(s.active.lora),
                    layer_role_of.get(s.active.layer),
                    self.hooks_signature(),
                )
            )
        return tuple(signature)

    def configured(self, settings: Any) -> Strategy:
        """This strategy with the values `settings` (the config's `cl` section) has for its fields, by name."""
        values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(self) if hasattr(settings, f.name)}
        return dataclasses.replace(self, **values)

    def overridden_hooks(self) -> tuple[str, ...]:
        return tuple(hook for hook in HOOKS if getattr(type(self), hook) is not getattr(Strategy, hook))

    def hooks_signature(self) -> tuple:
        """() with the default hooks; else the class and its settings (every field but the name and
        description), which decide what the hooks do."""
        if not self.overridden_hooks():
            return ()
        settings = tuple(
            (f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if f.name not in ("name", "description")
        )
        return (f"{type(self).__module__}.{type(self).__qualname__}", settings)

    # -- hooks (module docstring): the defaults train the stage's data with the model's own loss ---

    def stage_data(self, context: StageContext) -> EncodedSet:
        """The examples stage `context.stage` trains on."""
        from hybridcl.data.batching import concat_encoded  # here: torch, which the report does without

        sets = [context.train_sets[key] for key in context.stage.tasks]
        return sets[0] if len(sets) == 1 else concat_encoded(sets)

    def extra_loss(self, context: StageContext) -> ExtraLoss | None:
        """A term added to the loss at each training step of the stage; None: none."""
        return None

    def after_stage(self, context: StageContext) -> None:
        """After the stage is trained (or restored, or copied): rebuild or extend `context.state`."""


@dataclass(frozen=True)
class Sequential(Strategy):
    """One stage per task. Per task: a LoRA adapter (named after the task) and/or a layer.

    layer: "per_task" (named after the task), "shared" (one layer "shared"), or None.
    train_layer_until: the shared layer trains at stages 1..train_layer_until only (None: always).
    base: the whole base trains at every stage (no LoRA, no layer).
    """

    lora: bool = True
    layer: str | None = None
    train_layer_until: int | None = None
    base: bool = False

    def _layer_name(self, tasks: tuple[str, ...], k: int) -> str | None:
        return {None: None, "per_task": tasks[k], "shared": SHARED}[self.layer]

    def use(self, tasks: tuple[str, ...], k: int) -> Use:
        return Use(lora=tasks[k] if self.lora else None, layer=self._layer_name(tasks, k))

    def trains(self, tasks: tuple[str, ...], k: int) -> Components:
        use = self.use(tasks, k)
        train_layer = use.layer is not None and (self.train_layer_until is None or k + 1 <= self.train_layer_until)
        return Components(
            loras=(use.lora,) if use.lora else (),
            layers=(use.layer,) if train_layer else (),
            base=self.base,
        )


@dataclass(frozen=True)
class Joint(Strategy):
    """Multitask upper bound: one LoRA "joint" + one layer "joint", one stage on all tasks at once."""

    def use(self, tasks: tuple[str, ...], k: int) -> Use:
        return Use(lora=JOINT, layer=JOINT)

    def trains(self, tasks: tuple[str, ...], k: int) -> Components:
        return Components(loras=(JOINT,), layers=(JOINT,))

    def num_stages(self, tasks: Sequence[str]) -> int:
        _tasks(tasks)
        return 1

    def stages(self, tasks: Sequence[str]) -> list[Stage]:
        tasks = _tasks(tasks)
        return [Stage(1, tasks, self.trains(tasks, 0), self.use(tasks, 0))]

    def evaluation(self, tasks: Sequence[str], stage: int, task: str) -> Use:
        tasks = _tasks(tasks)
        if task not in tasks:
            raise ValueError(f"{self.name}: unknown task {task!r}; tasks are {list(tasks)}")
        if stage not in (0, 1):
            raise ValueError(f"{self.name}: stage {stage} out of range 0..1")
        return self.use(tasks, 0)


def shared_prefix(a: Strategy, b: Strategy, tasks: Sequence[str]) -> int:
    """How many leading stages strategies `a` and `b` share (train once, then branch)."""
    n = min(a.num_stages(tasks), b.num_stages(tasks))
    shared = 0
    for stage in range(1, n + 1):
        if a.stage_signature(tasks, stage) != b.stage_signature(tasks, stage):
            break
        shared = stage
    return shared


def _tasks(tasks: Sequence[str]) -> tuple[str, ...]:
    tasks = tuple(tasks)
    if not tasks:
        raise ValueError("a strategy needs at least one task")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"task keys must be distinct, got {list(tasks)}")
    reserved = {SHARED, JOINT} & set(tasks)
    if reserved:
        raise ValueError(f"task keys {sorted(reserved)} are reserved for shared components")
    return tasks


def _trains_part_of(trainable: Components, use: Use) -> bool:
    """Whether `trainable` changes the forward pass of `use` (the base runs under every one)."""
    return trainable.base or use.lora in trainable.loras or use.layer in trainable.layers


def _unique(names) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n is not None))
