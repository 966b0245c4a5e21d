"""hybridcl.results on synthetic stage records: the tree of docs/results-schema.md, finished and mid-run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hybridcl.bootstrap import FIGURES
from hybridcl.cl_figures import summarize
from hybridcl.metrics import METRICS, OUTPUT_STATS
from hybridcl.results import per_million, results_tree, strategy_comparisons, strategy_results
from hybridcl.strategies import get_strategy
from test_continual import keys

SCHEMA_DOC = Path(__file__).parents[1] / "docs" / "results-schema.md"
TASKS = ("python", "javascript")
SEEDS = [0, 1]

# The keys docs/results-schema.md documents, level by level.
TOP_KEYS = {
    "schema_version",
    "name",
    "created",
    "finished",
    "config",
    "versions",
    "device",
    "tasks",
    "direction",
    "metrics",
    "seeds",
    "data",
    "sources",
    "strategies",
    "comparisons",
}
STRATEGY_KEYS = {
    "label",
    "results_dir",
    "stages",
    "task_identity_at_inference",
    "matrices",
    "matrices_summary",
    "cl",
    "params",
    "outputs",
    "efficiency",
    "cost",
    "loss_curves",
    "codebleu_dataflow_counted_as_one",
}
CL_KEYS = {"average", "forgetting", "forgetting_rate", "bwt", "fwt", "notes"}
SUMMARY_KEYS = {"mean", "std", "ci95", "n", "values"}
COST_KEYS = {"stages", "train_wall_time_s", "eval_wall_time_s"}
COST_FIGURES = {"wall_time_s", "tokens_per_s", "peak_memory_bytes"}
TRAIN_COST_KEYS = COST_FIGURES | {"peak_memory_kind", "steps", "examples"}
COMPARISON_KEYS = {"difference", "bootstrap_ci95", "resamples", "examples", "seeds", "seeds_ci95"}


def score(seed: int, stage: int, task: str) -> float:
    """A distinct score per cell, so that a cell read from the wrong record shows."""
    return 0.1 * stage + 0.01 * TASKS.index(task) + 0.001 * seed


def record(seed: int, stage: int, shared_with: str | None = None) -> dict:
    """A stage.json as the runner writes it (stage 0 has no training and no shared_with)."""
    evaluation = {
        task: {
            "scores": {name: score(seed, stage, task) for name in METRICS + OUTPUT_STATS},
            "notes": {},
            "components": {"lora": task, "layer": task},
            "cost": {
                "wall_time_s": 1.0 + stage,
                "generated_tokens": 10,
                "tokens_per_s": 100.0,
                "peak_memory_bytes": 1000,
                "peak_memory_kind": "process_peak_rss",
                "score_time_s": 0.5,
            },
        }
        for task in TASKS
    }
    if stage == 0:
        return {"stage": 0, "seed": seed, "train": None, "eval": evaluation}
    train = {
        "losses": [2.0 + seed, 1.0 + stage],
        "steps": 2 + seed,
        "examples": 16 + seed,
        "target_tokens": 100,
        "wall_time_s": 10.0 * stage + seed,
        "tokens_per_s": 50.0,
        "peak_memory_bytes": 2000,
        "peak_memory_kind": "process_peak_rss",
        "trainable_params": 1000,
    }
    return {"stage": stage, "seed": seed, "shared_with": shared_with, "train": train, "eval": evaluation}


def params(trainable: int) -> dict:
    per_stage = [
        {"stage": s, "tasks": [task], "trainable": trainable, "trainable_pct_of_base": 1.0}
        for s, task in (
            (1, "python"),
            (2, "javascript"),
        )
    ]
    return {"base": 100_000, "per_stage": per_stage, "stored": 2 * trainable, "stored_pct_of_base": 2.0}


def finished_records() -> list[list[dict]]:
    return [[record(seed, s) for s in range(3)] for seed in SEEDS]


def only_stage0_records() -> list[list[dict | None]]:
    return [[record(seed, 0), None, None] for seed in SEEDS]


def tree(strategies: dict[str, dict]) -> dict:
    config = {"name": "synthetic", "data": {"languages": list(TASKS), "direction": "generate"}}
    return results_tree(
        config,
        created="2026-01-01T00:00:00+00:00",
        versions={"hybridcl": "0.1.0"},
        device={"type": "cpu", "name": "x86_64", "processes": 1},
        seeds=SEEDS,
        data={task: {"counts": {}, "skips": {}, "split_skips": {}} for task in TASKS},
        strategies=strategies,
    )


@pytest.fixture
def mid_run() -> dict:
    """task_specific finished, shared_layer with only stage 0 (shared by every strategy) finished."""
    return tree(
        {
            "task_specific": strategy_results(get_strategy("task_specific"), TASKS, finished_records(), params(50)),
            "shared_layer": strategy_results(get_strategy("shared_layer"), TASKS, only_stage0_records(), params(60)),
        }
    )


def summaries(tree):
    """Every dict in the tree that has a summary's `mean`."""
    if isinstance(tree, dict):
        if "mean" in tree:
            yield tree
        for value in tree.values():
            yield from summaries(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from summaries(value)


def test_the_expected_keys_are_those_the_schema_documents():
    documented = set(re.findall(r'"(\w+)"', SCHEMA_DOC.read_text()))
    expected = TOP_KEYS | STRATEGY_KEYS | CL_KEYS | SUMMARY_KEYS | COST_KEYS | TRAIN_COST_KEYS | COMPARISON_KEYS
    expected |= set(FIGURES) | {"bleu_stats"}
    assert expected - documented == set()


def test_a_mid_run_tree_has_the_schema_keys_and_no_private_ones(mid_run):
    assert json.loads(json.dumps(mid_run)) == mid_run  # plain JSON values
    assert set(mid_run) == TOP_KEYS and mid_run["finished"] is False
    assert mid_run["tasks"] == list(TASKS) and mid_run["metrics"] == list(METRICS) and mid_run["seeds"] == SEEDS
    for name, entry in mid_run["strategies"].items():
        assert set(entry) == STRATEGY_KEYS, name
        assert set(entry["matrices"]) == set(entry["matrices_summary"]) == set(entry["cl"]) == set(METRICS)
        assert set(entry["efficiency"]) == set(METRICS) and set(entry["outputs"]) == set(OUTPUT_STATS)
        assert all(set(figures) == CL_KEYS for figures in entry["cl"].values())
        assert set(entry["cost"]) == COST_KEYS
        for row in entry["cost"]["stages"]:
            assert set(row) <= {"stage", "train", "eval", "shared_with"}
            assert set(row["eval"]) == COST_FIGURES
            assert "train" not in row or set(row["train"]) <= TRAIN_COST_KEYS
    assert all(set(summary) == SUMMARY_KEYS for summary in summaries(mid_run))
    assert [key for key in keys(mid_run) if key.startswith("_")] == []


def test_a_finished_strategy_has_every_figure(mid_run):
    entry = mid_run["strategies"]["task_specific"]
    assert entry["results_dir"] == "experiment_1_results" and entry["stages"] == 2
    assert entry["matrices"]["bleu"] == [
        [pytest.approx(sum(score(seed, s, task) for seed in SEEDS) / 2) for task in TASKS] for s in range(3)
    ]
    assert entry["cl"]["bleu"]["average"]["values"] == [
        pytest.approx((score(seed, 2, "python") + score(seed, 2, "javascript")) / 2) for seed in SEEDS
    ]
    assert all(set(row["train"]) == TRAIN_COST_KEYS for row in entry["cost"]["stages"][1:])
    assert entry["loss_curves"] == {"1": [2.0, 2.0], "2": [2.0, 3.0]}  # the first seed's


def test_a_strategy_with_only_stage_0_has_nulls_where_stages_are_missing(mid_run):
    entry = mid_run["strategies"]["shared_layer"]
    assert entry["results_dir"] == "experiment_2_results" and entry["stages"] == 2
    assert entry["matrices"]["bleu"][0] == mid_run["strategies"]["task_specific"]["matrices"]["bleu"][0]
    assert entry["matrices"]["bleu"][1:] == [[None, None], [None, None]]
    assert entry["cl"]["bleu"]["average"] is None and entry["efficiency"]["bleu"] is None
    assert entry["cost"]["stages"][1] == {
        "stage": 1,
        "train": dict.fromkeys(COST_FIGURES),
        "eval": dict.fromkeys(COST_FIGURES),
    }
    assert entry["cost"]["train_wall_time_s"] is None and entry["cost"]["eval_wall_time_s"] is None
    assert entry["loss_curves"] == {}


def test_cost_sums_the_tasks_of_an_evaluation_and_the_stages_of_a_seed():
    records = finished_records()
    records[0][1]["shared_with"] = "lora_only"
    cost = strategy_results(get_strategy("task_specific"), TASKS, records, params(50))["cost"]
    assert cost["stages"][0]["eval"]["wall_time_s"]["values"] == [2.0, 2.0]  # 1.0 per task
    assert cost["stages"][2]["eval"]["wall_time_s"]["values"] == [6.0, 6.0]
    assert cost["stages"][1]["train"]["steps"] == 2 and cost["stages"][1]["train"]["examples"] == 16  # seed 0's
    assert cost["stages"][1]["shared_with"] == "lora_only" and "shared_with" not in cost["stages"][2]
    assert cost["train_wall_time_s"]["values"] == [30.0, 32.0]  # stages 1 + 2: 10 + 20, 11 + 21
    assert cost["eval_wall_time_s"]["values"] == [12.0, 12.0]  # stages 0..2: 2 + 4 + 6


def test_an_evaluation_throughput_is_all_tokens_over_all_time_and_its_peak_the_highest():
    """The tasks of a stage are evaluated one after another: throughputs and peaks do not add up."""
    records = finished_records()
    for seed in records:
        seed[2]["eval"]["javascript"]["cost"].update(generated_tokens=50, peak_memory_bytes=3000)
    stage2 = strategy_results(get_strategy("task_specific"), TASKS, records, params(50))["cost"]["stages"][2]["eval"]
    assert stage2["tokens_per_s"]["values"] == [pytest.approx(60 / 6.0)] * 2  # (10 + 50) tokens in 3 + 3 s
    assert stage2["peak_memory_bytes"]["values"] == [3000, 3000]


def test_efficiency_is_the_average_per_million_trainable_parameters_of_the_largest_stage():
    entry = strategy_results(get_strategy("task_specific"), TASKS, finished_records(), params(500_000))
    averages = entry["cl"]["bleu"]["average"]["values"]
    assert entry["efficiency"]["bleu"]["values"] == [pytest.approx(2 * value) for value in averages]
    assert per_million({"values": [1.0]}, 0) is None and per_million(None, 10) is None


def test_a_zero_dataflow_match_is_flagged_where_codebleu_counted_it_as_one():
    records = finished_records()
    for evaluation in (r["eval"][task] for seed in records for r in seed for task in TASKS):
        evaluation["scores"]["codebleu_dataflow"] = 0.5
    records[1][2]["eval"]["javascript"]["scores"]["codebleu_dataflow"] = 0.0
    records[0][1]["eval"]["python"]["scores"].update(codebleu=None, codebleu_dataflow=0.0)  # no CodeBLEU here
    entry = strategy_results(get_strategy("task_specific"), TASKS, records, params(1000))
    assert entry["codebleu_dataflow_counted_as_one"] == [{"seed": 1, "stage": 2, "task": "javascript"}]


def lowered(records: list[list[dict]], by: float) -> list[list[dict]]:
    """The records with BLEU `by` lower after every trained stage."""
    records = json.loads(json.dumps(records))
    for seed in records:
        for stage in seed[1:]:
            for evaluation in stage["eval"].values():
                evaluation["scores"]["bleu"] -= by
    return records


def test_comparisons_pair_every_strategy_on_every_figure():
    records = {"task_specific": finished_records(), "lora_only": lowered(finished_records(), 0.05),
               "layer_only": lowered(finished_records(), 0.08)}  # fmt: skip
    block = strategy_comparisons(TASKS, records)
    assert set(block) == {"task_specific vs lora_only", "task_specific vs layer_only", "lora_only vs layer_only"}
    for pair in block.values():
        assert set(pair) == {"bleu"} and set(pair["bleu"]) == set(FIGURES)
        assert all(set(entry) == COMPARISON_KEYS for entry in pair["bleu"].values())
    entry = block["task_specific vs layer_only"]["bleu"]["average"]
    cl = {name: strategy_results(get_strategy(name), TASKS, seeds, params(50))["cl"] for name, seeds in records.items()}
    assert entry["difference"] == pytest.approx(
        cl["task_specific"]["bleu"]["average"]["mean"] - cl["layer_only"]["bleu"]["average"]["mean"]
    )
    assert entry["difference"] == pytest.approx(0.08)
    assert block["lora_only vs layer_only"]["bleu"]["bwt"]["difference"] == pytest.approx(0, abs=1e-12)
    # these records have no per-example statistics (no bootstrap), and two seeds (no across-seed interval)
    assert entry | {"difference": None} == {"difference": None, "bootstrap_ci95": None, "resamples": None,
                                            "examples": None, "seeds": 2, "seeds_ci95": None}  # fmt: skip
    assert len(json.dumps(block)) < 10_000


def test_three_seeds_give_the_interval_of_the_per_seed_differences_and_missing_figures_give_none():
    three = [[record(seed, s) for s in range(3)] for seed in (0, 1, 2)]
    other = lowered(three, 0.0)
    for i, seed in enumerate(other):  # the last stage of seed i lower by 0.01 * i: differences 0, 0.01, 0.02
        for evaluation in seed[2]["eval"].values():
            evaluation["scores"]["bleu"] -= 0.01 * i
    block = strategy_comparisons(TASKS, {"a": three, "b": other, "c": [[seed[0], None, None] for seed in three]})
    assert block["a vs b"]["bleu"]["average"]["seeds_ci95"] == pytest.approx(summarize([0.0, 0.01, 0.02])["ci95"])
    assert block["a vs c"]["bleu"]["average"] is None  # c has no stage 2 yet
