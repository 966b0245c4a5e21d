"""hybridcl.plan: the stages, optimizer steps and evaluations a config will run, counted by hand here."""

from __future__ import annotations

from pathlib import Path

from hybridcl.config import load_config
from hybridcl.plan import plan_run

CONFIGS = Path(__file__).parents[1] / "configs"


def test_the_seed_config_trains_seven_stages_and_copies_shared_layers_first():
    # task_specific trains 2 stages; shared_layer's stage 1 is task_specific's (copied), its stage 2 is trained;
    # lora_only and layer_only train 2 each. 8,000 examples / batch 8 = 1,000 steps per epoch, 2 epochs.
    plan = plan_run(load_config(CONFIGS / "seed.yaml"))
    assert (plan.trained_stages, plan.copied_stages) == (7, 1)
    assert plan.optimizer_steps == 7 * 2_000
    # stage 0 once (identity init), then 2 stages x 4 strategies, each evaluating both tasks on 2,000 examples
    assert (plan.evaluations, plan.examples_per_evaluation) == ((1 + 8) * 2, 2_000)


def test_seeds_accumulation_and_random_init_layers_change_the_plan():
    overrides = ["strategies=[task_specific]", "seeds=3", "train.grad_accum_steps=4", "layer.init=random"]
    plan = plan_run(load_config(CONFIGS / "seed.yaml", overrides))
    assert plan.trained_stages == 2 * 3 and plan.copied_stages == 0
    assert plan.optimizer_steps == 2 * 3 * 250 * 2  # 1,000 batches -> 250 steps per epoch
    assert plan.evaluations == 3 * (1 + 2) * 2


def test_replay_plans_its_buffer_on_top_of_each_later_stage():
    overrides = ["strategies=[replay]", "data.n_train=100", "train.batch_size=10", "cl.replay_size=30"]
    plan = plan_run(load_config(CONFIGS / "seed.yaml", overrides))
    assert plan.optimizer_steps == (10 + 13) * 2  # stage 2 trains 100 + 30 examples: 13 batches


def test_a_joint_stage_trains_every_task_at_once():
    plan = plan_run(load_config(CONFIGS / "seed.yaml", ["strategies=[joint]", "train.epochs=1"]))
    assert plan.trained_stages == 1 and plan.optimizer_steps == 2 * 1_000
    assert plan.evaluations == (1 + 1) * 2
