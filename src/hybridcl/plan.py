"""What a config will do before it does it: stages trained and copied, optimizer steps, evaluations.

`plan_run(cfg)` mirrors the runner's choices (hybridcl.continual): a stage an earlier strategy of the
config shares (`shared_prefix`) is copied, not trained; with identity layer init stage 0 is evaluated
once per seed. Step counts assume `data.n_train` usable records per task (with n_train 0, every record
of the training splits, whose sizes the plan does not read: no step count) and one process (each
process of a torchrun takes its share of every batch); `replay` also trains on its buffer, which adds
at most `cl.replay_size` examples to each stage after the first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hybridcl.config import Config
from hybridcl.settings import IDENTITY_INITS
from hybridcl.strategies import Strategy, get_strategy, shared_prefix
from hybridcl.strategies.baselines import Replay


@dataclass(frozen=True)
class RunPlan:
    trained_stages: int  # stages trained (summed over strategies and seeds)
    copied_stages: int  # stages an earlier strategy trains: copied, not trained again
    optimizer_steps: int | None  # None: data.n_train 0 (whole training splits)
    evaluations: int  # (stage, task) evaluations, each generating for `examples_per_evaluation` examples
    examples_per_evaluation: int

    def describe(self) -> str:
        steps = "steps per the training splits' sizes" if self.optimizer_steps is None else f"{self.optimizer_steps:,}"
        return (
            f"{self.trained_stages} stage(s) to train ({self.copied_stages} copied from a strategy that shares "
            f"them), {steps} optimizer steps; {self.evaluations} evaluation(s) of "
            f"up to {self.examples_per_evaluation:,} examples each"
        )


def plan_run(cfg: Config) -> RunPlan:
    tasks = cfg.task_keys
    strategies = [get_strategy(name).configured(cfg.cl) for name in cfg.strategies]
    trained = copied = steps = 0
    for position, strategy in enumerate(strategies):
        for stage in strategy.stages(tasks):
            if any(shared_prefix(earlier, strategy, tasks) >= stage.index for earlier in strategies[:position]):
                copied += 1
            else:
                trained += 1
                steps += stage_steps(cfg, strategy, len(stage.tasks), stage.index)
    stage0_runs = 1 if cfg.layer.init in IDENTITY_INITS else len(strategies)
    evaluations = (stage0_runs + sum(s.num_stages(tasks) for s in strategies)) * len(tasks)
    steps = steps * cfg.seeds if cfg.data.n_train else None
    return RunPlan(trained * cfg.seeds, copied * cfg.seeds, steps, evaluations * cfg.seeds, cfg.data.n_valid)


def stage_steps(cfg: Config, strategy: Strategy, n_tasks: int, index: int) -> int:
    """Optimizer steps of one stage: batches of `train.batch_size`, `train.grad_accum_steps` per step."""
    examples = n_tasks * cfg.data.n_train
    if isinstance(strategy, Replay):
        examples += min(strategy.replay_size, (index - 1) * cfg.data.n_train)
    batches = math.ceil(examples / cfg.train.batch_size)
    return math.ceil(batches / cfg.train.grad_accum_steps) * cfg.train.epochs
