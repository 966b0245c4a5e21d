"""Reading a run's results: `load_results` (the JSON file) and `RunView.of`, a typed, read-only view of
it (docs/results-schema.md), built once per report.

Every other module of the report reads the results through this view: attributes and methods, no
lookups into the JSON. A figure is a `Summary`, or None where the results hold `null` (not applicable,
or not computed yet); an unfinished run, one seed, one task or a subset of strategies gives a view
with those Nones and fewer strategies. The run-level keys may be missing (a results dict of a run
that has trained nothing yet); each strategy's entry is read as the runner writes it, except
`outputs` and `task_identity_at_inference`, which results written before them lack, and `task_info`,
which results of CodeSearchNet runs written before it lack (`RunView.task_info` then holds what those
runs were: each task a CodeSearchNet language in the run's direction, headed by BLEU).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from hybridcl.cl_figures import summarize
from hybridcl.errors import UserError
from hybridcl.metrics.registry import REGISTRY
from hybridcl.results import TASK_METRIC
from hybridcl.run_files import RESULTS_FILE, SCHEMA_VERSION
from hybridcl.settings import task_cue
from hybridcl.strategies import STRATEGIES

Cells = list[list["Summary | None"]]  # a stage x task matrix of summaries (row 0 = before training)
# CodeBLEU's parts, in the order of its sum: codebleu = 0.25 x (n-gram + weighted n-gram + syntax + dataflow)
CODEBLEU_PARTS = ("codebleu_ngram", "codebleu_weighted_ngram", "ast_similarity", "codebleu_dataflow")


class ResultsError(UserError, ValueError):
    """A results file that is missing or that this report cannot read."""


def load_results(run_dir: str | Path) -> dict[str, Any]:
    """The results of a run: `run_dir/hybrid_experiment_results.json` (or that file's own path)."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise ResultsError(
            f"no results file at {path}: give the folder of a run (`hybridcl run` writes "
            f"{RESULTS_FILE} there once its data and model have loaded)"
        )
    try:
        with path.open(encoding="utf-8") as f:
            results = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path}: not a JSON results file ({error})") from None
    if not isinstance(results, dict):
        raise ResultsError(f"{path}: expected a JSON object, got {type(results).__name__}")
    version = results.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema_version {version!r}; this report reads version {SCHEMA_VERSION}")
    return results


@dataclass(frozen=True)
class Summary:
    """One figure across seeds: mean, sample std, Student-t 95% CI of the mean, the number of seeds with
    a value, and every seed's value in the run's seed order (None where a seed has none)."""

    mean: float
    std: float
    ci95: tuple[float, float]
    n: int
    values: tuple[float | None, ...] = ()

    @classmethod
    def of(cls, raw: Summary | Mapping[str, Any] | None) -> Summary | None:
        """A summary as `cl_figures.summarize` writes it (None stays None); a Summary as it is."""
        if raw is None or isinstance(raw, Summary):
            return raw
        low, high = raw["ci95"]
        return cls(
            float(raw["mean"]),
            float(raw["std"]),
            (float(low), float(high)),
            int(raw["n"]),
            tuple(raw.get("values", ())),  # always written by the runner; a summary made by hand may leave it out
        )

    @property
    def several(self) -> bool:
        """Whether more than one seed has a value (so there is a spread and an interval)."""
        return self.n > 1


@dataclass(frozen=True)
class Interval:
    """A 95% interval of a difference a − b: `name` says how it was made ('paired-bootstrap', 'across-seed'),
    `detail` over what ('200 examples per task, 1,000 resamples', '3 seeds')."""

    low: float
    high: float
    name: str
    detail: str

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def flipped(self) -> Interval:
        """The interval of b − a."""
        return Interval(-self.high, -self.low, self.name, self.detail)


def bootstrap_interval(entry: Mapping[str, Any] | None) -> Interval | None:
    """The paired-bootstrap interval of one entry of the results' `comparisons`, or None where it has none."""
    if entry is None or entry.get("bootstrap_ci95") is None:
        return None
    sizes = set(entry["examples"].values())
    if len(sizes) == 1:
        examples = f"{sizes.pop()} examples" + (" per task" if len(entry["examples"]) > 1 else "")
    else:
        examples = " + ".join(f"{n} {task}" for task, n in entry["examples"].items()) + " examples"
    detail = f"{examples}, {entry['resamples']:,} resamples"
    if entry["seeds"] > 1:
        detail += f", mean of {entry['seeds']} seeds"
    low, high = entry["bootstrap_ci95"]
    return Interval(float(low), float(high), "paired-bootstrap", detail)


def summary_of(values: Sequence[float | None]) -> Summary | None:
    return Summary.of(summarize(values))


def mean_per_seed(cells: Sequence[Summary | None]) -> Summary | None:
    """The mean of several cells, seed by seed, summarised; None when a cell is None."""
    if any(cell is None for cell in cells):
        return None
    per_seed = [None if None in values else sum(values) / len(values) for values in zip(*(c.values for c in cells))]
    return summary_of(per_seed)


def _cells(rows: list[list[Mapping | None]]) -> Cells:
    return [[Summary.of(cell) for cell in row] for row in rows]


@dataclass(frozen=True)
class TaskInfo:
    """One task of the stream (`task_info.<task>`): what it reads and writes (None: natural language),
    the metric the benchmark reports for it, and the cue its sources start with under data.task_prefix."""

    kind: str
    subtask: str
    input_language: str | None
    target_language: str | None
    headline: str
    cue: str

    @classmethod
    def of(cls, task: str, raw: Mapping[str, Any]) -> TaskInfo:
        missing = [field.name for field in fields(cls) if field.name not in raw]
        if missing:
            raise ResultsError(f"task_info.{task} lacks {', '.join(missing)}")
        return cls(**{field.name: raw[field.name] for field in fields(cls)})

    @classmethod
    def csn(cls, language: str, direction: str | None) -> TaskInfo:
        """A CodeSearchNet language as results written before `task_info` ran it."""
        source, target = (language, None) if direction == "summarize" else (None, language)
        return cls(f"csn-{direction}", language, source, target, "bleu", task_cue(direction or "n/a", language))

    @property
    def target_kind(self) -> str:
        """The registry's target kind of the task ('code' or 'text'), which decides the metrics it has."""
        return "text" if self.target_language is None else "code"

    @property
    def io_text(self) -> str:
        """'text → java': what the task reads and what it writes."""
        return f"{self.input_language or 'text'} → {self.target_language or 'text'}"


@dataclass(frozen=True)
class StageParams:
    stage: int
    tasks: tuple[str, ...]
    trainable: int
    trainable_pct_of_base: float


@dataclass(frozen=True)
class Params:
    """Parameter counts (`params`): per stage, stored for all tasks, and the components' sizes (None
    when the strategy has no such component)."""

    base: int
    per_stage: tuple[StageParams, ...]
    stored: int
    stored_pct_of_base: float
    stored_what: str
    lora_per_adapter: int | None
    layer: int | None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Params:
        per_stage = tuple(
            StageParams(s["stage"], tuple(s["tasks"]), s["trainable"], s["trainable_pct_of_base"])
            for s in raw["per_stage"]
        )
        return cls(
            raw["base"],
            per_stage,
            raw["stored"],
            raw["stored_pct_of_base"],
            raw["stored_what"],
            raw["lora_per_adapter"],
            raw["layer"],
        )

    @property
    def trainable_max(self) -> int:
        """Trainable parameters of the largest stage."""
        return max(stage.trainable for stage in self.per_stage)


@dataclass(frozen=True)
class PartCost:
    """The training or the evaluation of one stage, summarised over seeds (None: not measured)."""

    wall_time_s: Summary | None = None
    tokens_per_s: Summary | None = None
    peak_memory_bytes: Summary | None = None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> PartCost:
        return cls(*(Summary.of(raw[key]) for key in ("wall_time_s", "tokens_per_s", "peak_memory_bytes")))


@dataclass(frozen=True)
class StageCost:
    """One row of `cost.stages`. Stage 0 only evaluates; the training's counts (peak memory kind, steps,
    examples) are there once the first seed has trained the stage."""

    stage: int
    train: PartCost
    eval: PartCost
    shared_with: str | None
    peak_memory_kind: str | None
    steps: int | None
    examples: int | None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> StageCost:
        train = raw.get("train", {})  # absent at stage 0
        return cls(
            raw["stage"],
            PartCost.of(train) if train else PartCost(),
            PartCost.of(raw["eval"]),
            raw.get("shared_with"),
            train.get("peak_memory_kind"),
            train.get("steps"),
            train.get("examples"),
        )


@dataclass(frozen=True)
class StrategyView:
    """One strategy's entry of `strategies`."""

    name: str
    label: str
    results_dir: str
    stages: int
    cells: dict[str, Cells]  # matrices_summary, per metric
    cl: dict[str, dict[str, Summary | None]]  # per metric, per figure
    notes: dict[str, dict[str, str]]  # per metric: why a figure is null
    efficiency: dict[str, Summary | None]
    params: Params
    outputs: dict[str, Cells]  # per output statistic; {} in results from before the statistics
    cost_stages: tuple[StageCost, ...]
    train_wall_time_s: Summary | None
    eval_wall_time_s: Summary | None
    loss_curves: dict[int, list[float]]  # stage -> loss per optimizer step (the first seed)
    freezes_finished_tasks: bool  # never trains what evaluates a finished task (the registry says)
    task_identity_at_inference: bool | None  # picks each task's components by its identity; None in older results
    dataflow_counted_as_one: tuple[Mapping[str, Any], ...]  # {seed, stage, task}; () in older results

    @classmethod
    def of(cls, name: str, raw: Mapping[str, Any], tasks: Sequence[str]) -> StrategyView:
        registered = STRATEGIES.get(name)
        cost = raw["cost"]
        return cls(
            name=name,
            label=raw["label"],
            results_dir=raw["results_dir"],
            stages=raw["stages"],
            cells={metric: _cells(rows) for metric, rows in raw["matrices_summary"].items()},
            cl={
                metric: {fig: Summary.of(s) for fig, s in figs.items() if fig != "notes"}
                for metric, figs in raw["cl"].items()
            },
            notes={metric: figs["notes"] or {} for metric, figs in raw["cl"].items()},
            efficiency={metric: Summary.of(s) for metric, s in raw["efficiency"].items()},
            params=Params.of(raw["params"]),
            outputs={stat: _cells(rows) for stat, rows in raw.get("outputs", {}).items()},
            cost_stages=tuple(StageCost.of(row) for row in cost["stages"]),
            train_wall_time_s=Summary.of(cost["train_wall_time_s"]),
            eval_wall_time_s=Summary.of(cost["eval_wall_time_s"]),
            loss_curves={int(stage): losses for stage, losses in raw["loss_curves"].items()},
            freezes_finished_tasks=bool(tasks) and registered is not None and registered.freezes_finished_tasks(tasks),
            task_identity_at_inference=raw.get("task_identity_at_inference"),
            dataflow_counted_as_one=tuple(raw.get("codebleu_dataflow_counted_as_one", ())),
        )

    def figure(self, metric: str, figure: str) -> Summary | None:
        """A continual-learning figure (`cl.<metric>.<figure>`), or None."""
        return self.cl[metric][figure]

    def applies_to(self, metric: str) -> set[int]:
        """The task columns `metric` has a score in at some stage: the tasks its figures are taken over (a
        column null at every stage is a task the metric does not apply to)."""
        rows = self.cells.get(metric, [])
        return {j for row in rows for j, cell in enumerate(row) if cell is not None}

    def note(self, metric: str, figure: str) -> str | None:
        """Why the results withhold a figure (e.g. below the score floor), or None."""
        return self.notes[metric].get(figure)

    def stage_tasks(self, stage: int) -> tuple[str, ...]:
        """The tasks stage `stage` (from 1) trains on."""
        return next(entry.tasks for entry in self.params.per_stage if entry.stage == stage)

    def stage_label(self, stage: int) -> str:
        """'0: base', or the stage and the tasks it trains ('2: javascript', '1: python+javascript')."""
        return "0: base" if stage == 0 else f"{stage}: {'+'.join(self.stage_tasks(stage))}"

    def completed_stages(self) -> set[int]:
        """The stages (from 1) that have a score in some cell, or a measured training time."""
        scored = {
            s for rows in self.cells.values() for s, row in enumerate(rows) if s and any(c is not None for c in row)
        }
        # The runner lists every stage in cost.stages, finished or not: only a measured training time counts.
        return scored | {row.stage for row in self.cost_stages if row.train.wall_time_s is not None}

    def has_output_stats(self) -> bool:
        """Whether any evaluation has its output statistics (results from before them have none)."""
        return any(cell is not None for row in self.outputs.get("distinct_share", []) for cell in row)


@dataclass(frozen=True)
class RunView:
    """The whole results file: the run's settings and each strategy's view, in the registry's order."""

    name: str
    created: str | None
    finished: bool | None
    tasks: tuple[str, ...]
    task_info: dict[str, TaskInfo]  # per task, in the order of `tasks`
    direction: str | None  # CodeSearchNet's direction; None for a stream of other tasks
    seeds: tuple[int, ...]
    metrics: tuple[str, ...]  # the headline metrics, which the sections and tables use
    side_metrics: dict[str, tuple[str, ...]]  # headline metric -> the metrics shown beside it (registry)
    config: Mapping[str, Any]
    device: Mapping[str, Any]
    versions: Mapping[str, str]
    data: Mapping[str, Any]  # per task: {"counts": {...}, "skips": {...}}
    strategies: dict[str, StrategyView]
    comparisons: Mapping[str, Any]  # "a vs b" -> metric -> figure -> entry; {} in results from before it

    @classmethod
    def of(cls, results: Mapping[str, Any]) -> RunView:
        tasks = tuple(results.get("tasks", ()))
        present = results.get("strategies", {})
        order = [name for name in STRATEGIES if name in present] + [name for name in present if name not in STRATEGIES]
        return cls(
            name=results.get("name", "?"),
            created=results.get("created"),
            finished=results.get("finished"),
            tasks=tasks,
            task_info=_task_info(results, tasks),
            direction=results.get("direction"),
            seeds=tuple(results.get("seeds", ())),
            metrics=tuple(m for m in results.get("metrics", ()) if m not in REGISTRY or REGISTRY[m].headline),
            side_metrics=_side_metrics(results.get("metrics", ())),
            config=results.get("config", {}),
            device=results.get("device", {}),
            versions=results.get("versions", {}),
            data=results.get("data", {}),
            strategies={name: StrategyView.of(name, present[name], tasks) for name in order},
            comparisons=results.get("comparisons", {}),
        )

    @property
    def names(self) -> list[str]:
        return list(self.strategies)

    @property
    def table_metrics(self) -> tuple[str, ...]:
        """The headline metrics, with CodeBLEU's scored parts right after CodeBLEU: the tables' columns."""
        parts = [m for m in CODEBLEU_PARTS if m in self.metrics or self.scored(m)]
        if "codebleu" not in self.metrics or set(parts) <= set(self.metrics):
            return self.metrics
        rest = [m for m in self.metrics if m not in parts]
        after = rest.index("codebleu") + 1
        return (*rest[:after], *parts, *rest[after:])

    def scored(self, metric: str) -> bool:
        """Whether some strategy has a score of `metric` in some cell."""
        return any(c is not None for s in self.strategies.values() for row in s.cells.get(metric, []) for c in row)

    @property
    def primary(self) -> str | None:
        """The metric of the sentences: each task's own metric when the tasks' metrics differ, else BLEU when
        the run has it."""
        if not self.metrics:
            return None
        if TASK_METRIC in self.metrics:
            return TASK_METRIC
        return "bleu" if "bleu" in self.metrics else self.metrics[0]

    @property
    def target_kinds(self) -> set[str]:
        """The registry's target kinds ('code', 'text') of the run's tasks."""
        return {info.target_kind for info in self.task_info.values()}

    @property
    def configured(self) -> list[str]:
        """The strategies the config asks for (some may have no results yet)."""
        return list(self.config.get("strategies", []))

    def settings(self, section: str) -> Mapping[str, Any]:
        """One section of the resolved config (`model`, `data`, `train`, ...); {} when absent."""
        return self.config.get(section, {})

    def figure(self, name: str, metric: str, figure: str) -> Summary | None:
        return self.strategies[name].figure(metric, figure)

    def figures(self, names: Sequence[str], metric: str, figure: str) -> dict[str, Summary | None]:
        """One figure of each of `names`, in their order."""
        return {name: self.figure(name, metric, figure) for name in names}

    def bootstrap(self, a: str, b: str, metric: str, figure: str) -> Interval | None:
        """The paired-bootstrap 95% interval of a − b on `figure` of `metric`, from the results' `comparisons`
        (stored for one order of the pair), or None where the results have none."""
        for key, flip in ((f"{a} vs {b}", False), (f"{b} vs {a}", True)):
            if key in self.comparisons:
                interval = bootstrap_interval((self.comparisons[key].get(metric) or {}).get(figure))
                return interval.flipped() if interval and flip else interval
        return None

    @property
    def base_params(self) -> int | None:
        return next((s.params.base for s in self.strategies.values()), None)

    @property
    def lora_size(self) -> int | None:
        """Parameters of one LoRA adapter, from the first strategy that has one."""
        return next((s.params.lora_per_adapter for s in self.strategies.values() if s.params.lora_per_adapter), None)

    @property
    def layer_size(self) -> int | None:
        """Parameters of one full layer, from the first strategy that has one."""
        return next((s.params.layer for s in self.strategies.values() if s.params.layer), None)

    def base_average(self, metric: str) -> Summary | None:
        """A of the base model: the mean of stage 0's row, seed by seed (stage 0 is the same base for all)."""
        rows = (s.cells[metric][0] for s in self.strategies.values())
        return next((average for row in rows if (average := mean_per_seed(row)) is not None), None)


def _task_info(results: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, TaskInfo]:
    """Each task's `task_info` entry; in results written before it, the CodeSearchNet language's."""
    raw = results.get("task_info")
    if raw is None:
        return {task: TaskInfo.csn(task, results.get("direction")) for task in tasks}
    missing = [task for task in tasks if task not in raw]
    if missing:
        raise ResultsError(f"task_info has no entry for task(s) {', '.join(missing)}")
    return {task: TaskInfo.of(task, raw[task]) for task in tasks}


def _side_metrics(metrics: Sequence[str]) -> dict[str, tuple[str, ...]]:
    side: dict[str, tuple[str, ...]] = {}
    for metric in metrics:
        if metric in REGISTRY and (beside := REGISTRY[metric].beside) is not None:
            side[beside] = side.get(beside, ()) + (metric,)
    return side
