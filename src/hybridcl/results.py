"""The results file's tree (docs/results-schema.md), built from stage records by pure functions.

A stage record is a finished stage's parsed `stage.json` (written by the runner: `stage`, `seed`,
`shared_with`, `train` (None at stage 0), `eval` per task), or None for a stage not finished yet. A
strategy's records are `records[i][s]`: seed i (in the run's seed order), stage s = 0..S.

    tree = results_tree(config, created=..., versions=..., device=..., seeds=..., data=..., strategies={
        name: strategy_results(strategy, tasks, records, params), ...},
        comparisons=strategy_comparisons(tasks, {name: records, ...}))

Nothing here reads files or the environment: the runner (`ContinualRun.collect`) gathers the records
and the rest, and writes the tree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np

from hybridcl import bootstrap
from hybridcl.cl_figures import summarize, summarize_cl, summarize_matrices
from hybridcl.metrics import METRICS, OUTPUT_STATS
from hybridcl.run_files import SCHEMA_VERSION, results_dir_name
from hybridcl.strategies import Strategy

# A pseudo-metric: each task's column is that task's own headline metric (task_info's `headline`).
TASK_METRIC = "task_metric"
StageRecords = Sequence[Sequence[dict | None]]  # records[i][s]: seed i, stage s; None = not finished
COST_FIGURES = ("wall_time_s", "tokens_per_s", "peak_memory_bytes")  # summarised over seeds
TRAIN_COUNTS = ("peak_memory_kind", "steps", "examples")  # the first seed's, as they are


def results_tree(
    config: dict,
    *,
    created: str,
    versions: dict,
    device: dict,
    seeds: list[int],
    data: dict,
    strategies: dict[str, dict],
    sources: dict | None = None,
    finished: bool = False,
    comparisons: dict | None = None,
    task_info: Mapping[str, dict] | None = None,
) -> dict:
    """The whole file: the run's settings and environment around each strategy's results. `config` is
    the resolved config as plain JSON values; the name comes from it, and the tasks from `task_info`
    (task key -> hybridcl.data.tasks.Task.as_record()) or, without it, CodeSearchNet's languages."""
    stream = bool(config["data"].get("tasks"))
    tree = {
        "schema_version": SCHEMA_VERSION,
        "name": config["name"],
        "created": created,
        "finished": finished,
        "config": config,
        "versions": versions,
        "device": device,
        "tasks": list(task_info) if task_info else list(config["data"]["languages"]),
        "direction": None if stream else config["data"]["direction"],
        "metrics": list(run_metrics(task_headlines(task_info))),
        "seeds": seeds,
        "data": data,
        "sources": sources or {},
        "strategies": strategies,
        "comparisons": comparisons or {},
    }
    if task_info:
        tree["task_info"] = dict(task_info)
    return tree


def task_headlines(task_info: Mapping[str, dict] | None) -> dict[str, str] | None:
    """Task -> its headline metric, from `task_info`."""
    return {task: info["headline"] for task, info in task_info.items()} if task_info else None


def run_metrics(headlines: Mapping[str, str] | None) -> tuple[str, ...]:
    """The registry's metrics, after TASK_METRIC where the tasks' headline metrics are not all BLEU."""
    return (TASK_METRIC, *METRICS) if headlines and set(headlines.values()) != {"bleu"} else METRICS


def strategy_results(
    strategy: Strategy,
    tasks: Sequence[str],
    records: StageRecords,
    params: dict,
    headlines: Mapping[str, str] | None = None,
) -> dict:
    """One strategy's entry: its matrices and figures over seeds, parameters, cost and loss curves.
    `headlines`: task -> its own metric, which TASK_METRIC's column takes (see run_metrics)."""
    metrics = run_metrics(headlines)
    per_seed = {stat: score_matrices(records, tasks, stat, headlines) for stat in metrics + OUTPUT_STATS}
    matrices, matrices_summary = {}, {}
    for metric in metrics:
        matrices[metric], matrices_summary[metric] = summarize_matrices(per_seed[metric])
    cl = {metric: summarize_cl(per_seed[metric]) for metric in metrics}
    return {
        "label": strategy.description,
        "results_dir": results_dir_name(strategy.name),
        "stages": strategy.num_stages(tasks),
        "task_identity_at_inference": strategy.task_identity_at_inference(tasks),
        "matrices": matrices,
        "matrices_summary": matrices_summary,
        "cl": cl,
        "params": params,
        "efficiency": efficiency(cl, params),
        "outputs": {stat: summarize_matrices(per_seed[stat])[1] for stat in OUTPUT_STATS},
        "cost": cost(records),
        "loss_curves": loss_curves(records[0]),
        "codebleu_dataflow_counted_as_one": dataflow_counted_as_one(records, tasks),
    }


def strategy_comparisons(tasks: Sequence[str], records: Mapping[str, StageRecords]) -> dict:
    """`comparisons`: every pair of strategies, in the run's order ("a vs b", difference a − b), on each
    figure of bootstrap.FIGURES of each metric that has per-example statistics (BLEU): the difference of
    the means over seeds, its paired-bootstrap 95% interval over examples (None without statistics) and,
    with bootstrap.MIN_SEEDS_FOR_VERDICT seeds or more, the across-seed one. None where a side lacks the
    figure."""
    block: dict = {}
    for metric in bootstrap.STATISTICS:
        examples = bootstrap.example_counts(records, tasks, metric)
        weights = bootstrap.resample_weights(examples) if examples else None
        per_seed = {name: seed_figures(seeds, tasks, metric) for name, seeds in records.items()}
        resampled = {
            name: bootstrap.resampled_figures(seeds, tasks, metric, weights) if weights else {}
            for name, seeds in records.items()
        }
        for a, b in combinations(records, 2):
            block.setdefault(f"{a} vs {b}", {})[metric] = {
                figure: comparison_entry(
                    per_seed[a][figure],
                    per_seed[b][figure],
                    resampled[a].get(figure),
                    resampled[b].get(figure),
                    examples,
                )
                for figure in bootstrap.FIGURES
            }
    return block


def seed_figures(records: StageRecords, tasks: Sequence[str], metric: str) -> dict[str, list[float | None]]:
    """Each figure of bootstrap.FIGURES on each seed's matrix of the evaluations' scores."""
    matrices = score_matrices(records, tasks, metric)
    return {name: [figure(R) for R in matrices] for name, figure in bootstrap.FIGURES.items()}


def comparison_entry(
    values_a: list,
    values_b: list,
    resampled_a: np.ndarray | None,
    resampled_b: np.ndarray | None,
    examples: dict | None,
) -> dict | None:
    """One entry of `comparisons` (docs/results-schema.md)."""
    summary_a, summary_b = summarize(values_a), summarize(values_b)
    if summary_a is None or summary_b is None:
        return None
    paired = resampled_a is not None and resampled_b is not None
    seeds = bootstrap.seed_difference(values_a, values_b)
    return {
        "difference": summary_a["mean"] - summary_b["mean"],
        "bootstrap_ci95": bootstrap.percentile_interval(resampled_a - resampled_b) if paired else None,
        "resamples": bootstrap.RESAMPLES if paired else None,
        "examples": examples if paired else None,
        "seeds": sum(a is not None and b is not None for a, b in zip(values_a, values_b)),
        "seeds_ci95": seeds["ci95"] if seeds else None,
    }


def score_matrices(
    records: StageRecords, tasks: Sequence[str], score: str, headlines: Mapping[str, str] | None = None
) -> list[list[list[float | None]]]:
    """Per seed, the stage x task matrix of one metric or output statistic (None where not finished);
    TASK_METRIC's column of a task is its headline metric's."""
    columns = [headlines[task] if score == TASK_METRIC else score for task in tasks]
    return [
        [[stage_score(record, task, column) for task, column in zip(tasks, columns)] for record in seed]
        for seed in records
    ]


def stage_score(record: dict | None, task: str, score: str) -> float | None:
    return None if record is None else record["eval"][task]["scores"].get(score)


def dataflow_counted_as_one(records: StageRecords, tasks: Sequence[str]) -> list[dict]:
    """The evaluations whose CodeBLEU counted a zero dataflow match as a full one (codebleu 0.7.0 weighs
    `dataflow_match_score or 1`): {seed, stage, task} each, in seed, stage, task order."""
    return [
        {"seed": record["seed"], "stage": record["stage"], "task": task}
        for seed in records
        for record in seed
        if record is not None
        for task in tasks
        if stage_score(record, task, "codebleu") is not None and stage_score(record, task, "codebleu_dataflow") == 0
    ]


def efficiency(cl: dict, params: dict) -> dict:
    """Each metric's average performance per million trainable parameters (of the largest stage)."""
    trainable = max(stage["trainable"] for stage in params["per_stage"])
    return {metric: per_million(summary["average"], trainable) for metric, summary in cl.items()}


def per_million(summary: dict | None, trainable: int) -> dict | None:
    """A figure per million trainable parameters, seed by seed (None where a seed has no value yet)."""
    if summary is None or not trainable:
        return None
    return summarize([None if value is None else value / (trainable / 1e6) for value in summary["values"]])


def cost(records: StageRecords) -> dict:
    """Wall time, throughput and peak memory per stage (train and eval), summarised over seeds, and the
    total wall times (None for a seed with a stage not finished)."""
    return {
        "stages": [stage_cost(records, s) for s in range(len(records[0]))],
        "train_wall_time_s": total_wall_time(records, "train"),
        "eval_wall_time_s": total_wall_time(records, "eval"),
    }


def stage_cost(records: StageRecords, s: int) -> dict:
    """Stage s's row: its training (from stage 1) and evaluation figures; step and example counts and
    the stage it was copied from are the first seed's."""
    row = {"stage": s}
    for part in ("train", "eval") if s else ("eval",):
        row[part] = {key: summarize([part_figure(seed[s], part, key) for seed in records]) for key in COST_FIGURES}
    first = records[0][s] or {}
    if first.get("train"):
        row["train"].update({key: first["train"][key] for key in TRAIN_COUNTS})
    if first.get("shared_with"):
        row["shared_with"] = first["shared_with"]
    return row


def part_figure(record: dict | None, part: str, key: str) -> float | None:
    """One seed's figure of a stage's training, or of its evaluation; None when the stage has not
    finished. The tasks are evaluated one after another: their wall times add up, the throughput is
    all generated tokens over that time, the peak memory the highest of theirs."""
    if not (record or {}).get(part):
        return None
    if part == "train":
        return record["train"][key]
    costs = [task["cost"] for task in record["eval"].values()]
    wall = sum(cost["wall_time_s"] for cost in costs)
    if key == "wall_time_s":
        return wall
    if key == "tokens_per_s":
        return sum(cost["generated_tokens"] for cost in costs) / wall if wall else 0.0
    return max(cost[key] for cost in costs)


def total_wall_time(records: StageRecords, part: str) -> dict | None:
    """Training (stages 1..S) or evaluation (stages 0..S) wall time of each seed's whole run, summarised."""
    first = 1 if part == "train" else 0
    per_seed = [[part_figure(record, part, "wall_time_s") for record in seed[first:]] for seed in records]
    return summarize([None if None in times else sum(times) for times in per_seed])


def loss_curves(records: Sequence[dict | None]) -> dict[str, list[float]]:
    """The training loss per optimizer step of each finished stage, for one seed (the first)."""
    return {str(s): record["train"]["losses"] for s, record in enumerate(records) if s and record}
