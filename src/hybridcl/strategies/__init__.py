"""The strategies of docs/design.md section 1, by name: the registry configs and results use.

`core` holds what a strategy is (components, stages, evaluations, the hooks a method overrides) and
`baselines` the classic continual-learning methods built on its hooks. A new strategy is one
`Sequential(...)` (or a small subclass) and one entry here.
"""

from hybridcl.strategies.baselines import BASELINES
from hybridcl.strategies.core import (
    JOINT,
    SHARED,
    Components,
    ExtraLoss,
    Joint,
    Sequential,
    Stage,
    StageContext,
    Strategy,
    Use,
    shared_prefix,
)

__all__ = [
    "JOINT",
    "SHARED",
    "STRATEGIES",
    "Components",
    "ExtraLoss",
    "Sequential",
    "Stage",
    "StageContext",
    "Strategy",
    "Use",
    "get_strategy",
    "shared_prefix",
]

STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Sequential("task_specific", "Experiment 1: a LoRA adapter and a full layer per task", layer="per_task"),
        Sequential(
            "shared_layer",
            "Experiment 2: a LoRA adapter per task, one full layer trained at every stage",
            layer="shared",
        ),
        Sequential(
            "shared_layer_frozen",
            "a LoRA adapter per task, one full layer trained at stage 1 and frozen after",
            layer="shared",
            train_layer_until=1,
        ),
        Sequential("lora_only", "a LoRA adapter per task, no full layer"),
        Sequential("layer_only", "a full layer per task, no LoRA", lora=False, layer="per_task"),
        Sequential(
            "full_finetune",
            "the whole base trains, task after task (classic forgetting baseline)",
            lora=False,
            base=True,
        ),
        Joint("joint", "multitask upper bound: one LoRA + one layer trained on all tasks at once"),
        *BASELINES,
    )
}


def get_strategy(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known strategies: {', '.join(STRATEGIES)}") from None
