"""The strategy registry against docs/design.md section 1, with the expected tables written out."""

from __future__ import annotations

import pytest

from hybridcl.strategies import STRATEGIES, Components, Sequential, Use, get_strategy, shared_prefix
from hybridcl.strategies.baselines import MergeThenAdd

PY, JS, JAVA = "python", "javascript", "java"
TWO = (PY, JS)
THREE = (PY, JS, JAVA)


def C(loras=(), layers=(), base=False) -> Components:
    return Components(tuple(loras), tuple(layers), base)


def U(lora=None, layer=None) -> Use:
    return Use(lora, layer)


# Per strategy and task list: (components, trainable per stage, evaluation rows: stage 0..S, one Use per task).
# Rule: task j uses its own components if j <= s, task s's if j > s, its fresh ones at stage 0.
EXPECTED = {
    ("task_specific", TWO): (
        C([PY, JS], [PY, JS]),
        [C([PY], [PY]), C([JS], [JS])],
        [
            [U(PY, PY), U(JS, JS)],
            [U(PY, PY), U(PY, PY)],
            [U(PY, PY), U(JS, JS)],
        ],
    ),
    ("task_specific", THREE): (
        C([PY, JS, JAVA], [PY, JS, JAVA]),
        [C([PY], [PY]), C([JS], [JS]), C([JAVA], [JAVA])],
        [
            [U(PY, PY), U(JS, JS), U(JAVA, JAVA)],
            [U(PY, PY), U(PY, PY), U(PY, PY)],
            [U(PY, PY), U(JS, JS), U(JS, JS)],
            [U(PY, PY), U(JS, JS), U(JAVA, JAVA)],
        ],
    ),
    ("shared_layer", TWO): (
        C([PY, JS], ["shared"]),
        [C([PY], ["shared"]), C([JS], ["shared"])],
        [
            [U(PY, "shared"), U(JS, "shared")],
            [U(PY, "shared"), U(PY, "shared")],
            [U(PY, "shared"), U(JS, "shared")],
        ],
    ),
    ("shared_layer", THREE): (
        C([PY, JS, JAVA], ["shared"]),
        [C([PY], ["shared"]), C([JS], ["shared"]), C([JAVA], ["shared"])],
        [
            [U(PY, "shared"), U(JS, "shared"), U(JAVA, "shared")],
            [U(PY, "shared"), U(PY, "shared"), U(PY, "shared")],
            [U(PY, "shared"), U(JS, "shared"), U(JS, "shared")],
            [U(PY, "shared"), U(JS, "shared"), U(JAVA, "shared")],
        ],
    ),
    ("shared_layer_frozen", TWO): (
        C([PY, JS], ["shared"]),
        [C([PY], ["shared"]), C([JS])],
        [
            [U(PY, "shared"), U(JS, "shared")],
            [U(PY, "shared"), U(PY, "shared")],
            [U(PY, "shared"), U(JS, "shared")],
        ],
    ),
    ("shared_layer_frozen", THREE): (
        C([PY, JS, JAVA], ["shared"]),
        [C([PY], ["shared"]), C([JS]), C([JAVA])],
        [
            [U(PY, "shared"), U(JS, "shared"), U(JAVA, "shared")],
            [U(PY, "shared"), U(PY, "shared"), U(PY, "shared")],
            [U(PY, "shared"), U(JS, "shared"), U(JS, "shared")],
            [U(PY, "shared"), U(JS, "shared"), U(JAVA, "shared")],
        ],
    ),
    ("lora_only", TWO): (
        C([PY, JS]),
        [C([PY]), C([JS])],
        [
            [U(PY), U(JS)],
            [U(PY), U(PY)],
            [U(PY), U(JS)],
        ],
    ),
    ("lora_only", THREE): (
        C([PY, JS, JAVA]),
        [C([PY]), C([JS]), C([JAVA])],
        [
            [U(PY), U(JS), U(JAVA)],
            [U(PY), U(PY), U(PY)],
            [U(PY), U(JS), U(JS)],
            [U(PY), U(JS), U(JAVA)],
        ],
    ),
    ("layer_only", TWO): (
        C([], [PY, JS]),
        [C([], [PY]), C([], [JS])],
        [
            [U(None, PY), U(None, JS)],
            [U(None, PY), U(None, PY)],
            [U(None, PY), U(None, JS)],
        ],
    ),
    ("layer_only", THREE): (
        C([], [PY, JS, JAVA]),
        [C([], [PY]), C([], [JS]), C([], [JAVA])],
        [
            [U(None, PY), U(None, JS), U(None, JAVA)],
            [U(None, PY), U(None, PY), U(None, PY)],
            [U(None, PY), U(None, JS), U(None, JS)],
            [U(None, PY), U(None, JS), U(None, JAVA)],
        ],
    ),
    ("full_finetune", TWO): (
        C(base=True),
        [C(base=True), C(base=True)],
        [[U(), U()]] * 3,
    ),
    ("full_finetune", THREE): (
        C(base=True),
        [C(base=True), C(base=True), C(base=True)],
        [[U(), U(), U()]] * 4,
    ),
    ("joint", TWO): (
        C(["joint"], ["joint"]),
        [C(["joint"], ["joint"])],
        [[U("joint", "joint")] * 2] * 2,
    ),
    ("joint", THREE): (
        C(["joint"], ["joint"]),
        [C(["joint"], ["joint"])],
        [[U("joint", "joint")] * 3] * 2,
    ),
}
# The baselines (hybridcl.strategies.baselines): replay and ewc on Experiment 2's components; merge_then_add and olora
# train a LoRA per task and evaluate every task on the base with the adapters merged in so far.
for tasks in (TWO, THREE):
    EXPECTED["replay", tasks] = EXPECTED["ewc", tasks] = EXPECTED["shared_layer", tasks]
    merged = (C(tasks), [C([task]) for task in tasks], [[U()] * len(tasks)] * (len(tasks) + 1))
    EXPECTED["merge_then_add", tasks] = EXPECTED["olora", tasks] = merged


def test_the_registry_holds_the_seven_strategies_and_the_four_baselines():
    assert set(STRATEGIES) == {
        "task_specific",
        "shared_layer",
        "shared_layer_frozen",
        "lora_only",
        "layer_only",
        "full_finetune",
        "joint",
        "replay",
        "ewc",
        "merge_then_add",
        "olora",
    }
    assert {name for name, _ in EXPECTED} == set(STRATEGIES)
    for name, strategy in STRATEGIES.items():
        assert strategy.name == name and get_strategy(name) is strategy and strategy.description


@pytest.mark.parametrize("name,tasks", sorted(EXPECTED))
def test_components_trainable_and_evaluation_follow_design(name, tasks):
    components, trainable, evaluation = EXPECTED[name, tasks]
    strategy = get_strategy(name)
    assert strategy.components(tasks) == components
    assert strategy.num_stages(tasks) == len(trainable)
    assert [strategy.stage(tasks, s).trainable for s in range(1, len(trainable) + 1)] == trainable
    table = [[strategy.evaluation(tasks, s, task) for task in tasks] for s in range(len(trainable) + 1)]
    assert table == evaluation
    # while training stage s, the components of its (last) task are active (an adapter that is merged into
    # the base after its stage is evaluated as part of the base)
    for stage in strategy.stages(tasks):
        evaluated = strategy.evaluation(tasks, stage.index, stage.tasks[-1])
        if isinstance(strategy, MergeThenAdd):
            evaluated = U(stage.active.lora, evaluated.layer)
        assert stage.active == evaluated
        # everything trained is used in the forward pass (nothing trains without gradients)
        assert set(stage.trainable.loras) <= {stage.active.lora}
        assert set(stage.trainable.layers) <= {stage.active.layer}


@pytest.mark.parametrize("tasks", [TWO, THREE])
def test_stage_data(tasks):
    for name in STRATEGIES:
        stages = get_strategy(name).stages(tasks)
        if name == "joint":
            assert [s.tasks for s in stages] == [tasks]  # one stage over all tasks at once
        else:
            assert [s.tasks for s in stages] == [(t,) for t in tasks]
        assert [s.index for s in stages] == list(range(1, len(stages) + 1))


@pytest.mark.parametrize("tasks", [TWO, THREE])
def test_which_strategies_freeze_finished_tasks(tasks):
    """No later stage trains what evaluates a finished task: LoRA and layers per task, a shared layer
    trained at stage 1 only, and `joint` (nothing after its one stage); a shared layer trained at every
    stage and a trained base do not."""
    frozen = {name for name, strategy in STRATEGIES.items() if strategy.freezes_finished_tasks(tasks)}
    assert frozen == {"task_specific", "shared_layer_frozen", "lora_only", "layer_only", "joint"}
    assert not Sequential("until_2", layer="shared", train_layer_until=2).freezes_finished_tasks(tasks)
    assert get_strategy("task_specific").freezes_finished_tasks((PY,))  # one task: nothing comes after it


def test_task_order_is_respected():
    strategy = get_strategy("task_specific")
    tasks = (JS, PY)
    assert strategy.stage(tasks, 1).trainable == C([JS], [JS])
    assert strategy.evaluation(tasks, 1, PY) == U(JS, JS)  # python comes second: zero-shot with javascript's


def test_shared_prefixes():
    s = STRATEGIES
    for tasks in (TWO, THREE):
        n = len(tasks)
        # Experiment 1 and 2 (and the frozen ablation) train the same thing at stage 1
        assert shared_prefix(s["task_specific"], s["shared_layer"], tasks) == 1
        assert shared_prefix(s["task_specific"], s["shared_layer_frozen"], tasks) == 1
        assert shared_prefix(s["shared_layer"], s["shared_layer_frozen"], tasks) == 1
        for other in ("lora_only", "layer_only", "full_finetune", "joint"):
            assert shared_prefix(s["task_specific"], s[other], tasks) == 0, other
        assert shared_prefix(s["lora_only"], s["layer_only"], tasks) == 0
        for strategy in s.values():
            assert shared_prefix(strategy, strategy, tasks) == strategy.num_stages(tasks)
        assert s["task_specific"].stage_signature(tasks, 0) == ()
        assert s["task_specific"].stage_signature(tasks, n) != s["shared_layer"].stage_signature(tasks, n)
    # the role maps say how names translate when branching at stage 1
    assert s["task_specific"].roles(TWO) == {"lora:0": PY, "lora:1": JS, "layer:0": PY, "layer:1": JS}
    assert s["shared_layer"].roles(TWO) == {"lora:0": PY, "lora:1": JS, "layer:0": "shared"}
    # with a single task, joint is task_specific
    assert shared_prefix(s["joint"], s["task_specific"], (PY,)) == 1


def test_unknown_strategy_and_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown strategy 'hybrid'.*task_specific.*shared_layer.*joint"):
        get_strategy("hybrid")
    strategy = get_strategy("task_specific")
    with pytest.raises(ValueError, match="stage 3 out of range"):
        strategy.evaluation(TWO, 3, PY)
    with pytest.raises(ValueError, match="stage 3 out of range"):
        strategy.stage(TWO, 3)
    with pytest.raises(ValueError, match="unknown task 'go'"):
        strategy.evaluation(TWO, 1, "go")
    with pytest.raises(ValueError, match="distinct"):
        strategy.stages((PY, PY))
    with pytest.raises(ValueError, match="reserved"):
        get_strategy("shared_layer").components((PY, "shared"))
    with pytest.raises(ValueError, match="stage 2 out of range"):
        get_strategy("joint").evaluation(TWO, 2, PY)


def test_strategy_components_drive_a_hybrid_model():
    """Every strategy's stages can be applied to a real HybridModel (names exist, trainable set exact)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from hybridcl.model.hybrid import HybridModel
    from hybridcl.settings import LayerSettings, LoraSettings

    config = T5Config(
        vocab_size=32,
        d_model=16,
        d_kv=4,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        relative_attention_num_buckets=4,
        is_encoder_decoder=True,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    for name, strategy in STRATEGIES.items():
        torch.manual_seed(0)
        model = HybridModel(T5ForConditionalGeneration(config), LoraSettings(r=2), LayerSettings())
        components = strategy.components(THREE)
        for lora in components.loras:
            model.add_task_lora(lora)
        for layer in components.layers:
            model.add_layer(layer)
        for stage in strategy.stages(THREE):
            model.activate(stage.active.lora, stage.active.layer)
            t = stage.trainable
            model.set_trainable(loras=t.loras, layers=t.layers, base=t.base)
            trainable = {id(p) for p in model.parameters() if p.requires_grad}
            assert trainable, (name, stage.index)
            expected = {id(p) for n in t.loras for p in model.lora_parameters(n)}
            expected |= {id(p) for n in t.layers for p in model.layer_parameters(n)}
            if t.base:
                expected |= {id(p) for p in model.base_parameters()}
            assert trainable == expected, (name, stage.index)
