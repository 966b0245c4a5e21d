"""## RQ3 in analysis.md: capacity allocation. Parameters trained per stage and stored for all tasks,
A per million of them, which strategy is most efficient, and what each added component buys."""

from __future__ import annotations

from hybridcl.report.collapse import collapse_warning, figure_cell
from hybridcl.report.comparisons import compare_figure, ranking_line
from hybridcl.report.sweep_summary import SUMMARY_HEADER, partial_line, summary_rows
from hybridcl.report.text import (
    NA,
    code,
    codes,
    count,
    mean_std,
    metric_label,
    number,
    percent,
    signed,
    spread_note,
    table,
)
from hybridcl.report.view import RunView

# (larger, smaller, what the larger adds): the marginal value of each component, per stage trained
ADDED_COMPONENTS = (
    ("task_specific", "lora_only", "Adding a full layer per task to LoRA"),
    ("task_specific", "layer_only", "Adding a LoRA adapter per task to the full layer"),
)


def section(run: RunView, sweep: dict | None = None) -> list[str]:
    metric = run.primary
    lines = ["## RQ3: Capacity allocation (parameter efficiency)", ""]
    lines += [
        "Trainable parameters per stage (the largest stage), parameters stored for all tasks at the end, and "
        f"A ({metric_label(metric)}) per million trainable / stored parameters.",
        "",
    ]
    lines += parameters_table(run, metric)
    lines += rankings(run, metric)
    for larger, smaller, what in ADDED_COMPONENTS:
        lines += added_component(run, metric, larger, smaller, what)
    lines += sharing_the_layer(run, metric)
    if run.lora_size and run.layer_size:
        lines.append(
            f"- Component sizes: one full layer ({count(run.layer_size)}) is "
            f"{run.layer_size / run.lora_size:.1f}× one LoRA adapter ({count(run.lora_size)})."
        )
    missing = [name for name in ("lora_only", "layer_only") if name not in run.strategies]
    if missing:
        lines.append(f"- To weigh LoRA against the layer, add {codes(missing)} to the config's `strategies`.")
    lines.append("")
    if len(run.metrics) > 1:
        lines += [f"A per million trainable parameters, every metric ({spread_note(run)}):", ""]
        rows = [[code(s.name)] + [mean_std(s.efficiency[m]) for m in run.metrics] for s in run.strategies.values()]
        lines += table(["strategy"] + [metric_label(m) for m in run.metrics], rows)
    return lines + sweep_lines(run, sweep)


def sweep_lines(run: RunView, sweep: dict | None) -> list[str]:
    """This run among the points of its capacity sweep, and the Pareto front of A against parameters."""
    if sweep is None:
        return []
    rows = summary_rows(sweep)
    front = [f"{row[1]} at {row[0]}" for row in rows if "T" in row[-1]]
    return [
        f"Across the capacity sweep this run is a point of ({len(sweep['points'])} points; A = "
        f"{metric_label(sweep['metric'])}; front: on the Pareto front of A against trainable (T) or stored (S) "
        "parameters):",
        "",
        *([partial_line(sweep["partial"]), ""] if sweep.get("partial") else []),
        *table(list(SUMMARY_HEADER), rows),
        f"- Pareto front of A against trainable parameters: {', '.join(front) or NA}. "
        f"_Rests on each point's `cl.{sweep['metric']}.average` and `params`._",
        "",
    ]


def rankings(run: RunView, metric: str) -> list[str]:
    """Which strategy has the highest A, the highest A per million trainable parameters, the fewest stored."""
    best = ranking_line(
        run,
        run.figures(run.names, metric, "average"),
        True,
        metric=metric,
        label="A",
        claim="Best average performance",
        source=f"`cl.{metric}.average`",
        figure="average",
    )
    most_efficient = ranking_line(
        run,
        {name: s.efficiency[metric] for name, s in run.strategies.items()},
        True,
        metric=metric,
        label="A per million trainable parameters",
        claim="Most efficient",
        source=f"`efficiency.{metric}`",
        figure="average",
        bootstrap=False,
    )
    fewest = min(run.strategies.values(), key=lambda s: (s.params.stored, s.name))  # a tie: the first by name
    return [
        best,
        most_efficient + " A ratio like this favours small components; read it together with A.",
        f"- Fewest parameters stored for all tasks: {code(fewest.name)} ({count(fewest.params.stored)}). "
        "_Rests on `params.stored`._",
    ]


def parameters_table(run: RunView, metric: str) -> list[str]:
    rows = []
    for s in run.strategies.values():
        params, average = s.params, s.figure(metric, "average")
        rows.append(
            [
                code(s.name),
                count(params.trainable_max),
                percent(100 * params.trainable_max / params.base),
                count(params.stored),
                percent(params.stored_pct_of_base),
                params.stored_what,
                figure_cell(run, s.name, metric, "average"),
                mean_std(s.efficiency[metric]),
                NA if average is None else number(average.mean * 1e6 / params.stored),
            ]
        )
    header = [
        "strategy",
        "trainable / stage",
        "% of base",
        "stored",
        "% of base",
        "stored what",
        f"A ({metric_label(metric)})",
        "A per M trainable",
        "A per M stored",
    ]
    return table(header, rows, ["l", "r", "r", "r", "r", "l", "r", "r", "r"])


def added_component(run: RunView, metric: str, larger: str, smaller: str, what: str) -> list[str]:
    """What the larger strategy's extra trainable parameters per stage change in A."""
    if larger not in run.strategies or smaller not in run.strategies:
        return []
    big, small = run.strategies[larger], run.strategies[smaller]
    a_big, a_small = big.figure(metric, "average"), small.figure(metric, "average")
    p_big, p_small = big.params.trainable_max, small.params.trainable_max
    if a_big is None or a_small is None or p_big == p_small:
        return []
    c = compare_figure(run, metric, "average", larger, smaller)
    d = c.delta
    return [
        f"- {what} ({code(smaller)} → {code(larger)}) adds {count(p_big - p_small)} trainable "
        f"parameters per stage (×{p_big / p_small:.2f}) and changes A by {signed(d)} ({c.status}): "
        f"{signed(d * 1e6 / (p_big - p_small))} per added million. _Rests on `params.per_stage` and "
        f"`cl.{metric}.average`._" + collapse_warning(run, (larger, smaller), "average")
    ]


def sharing_the_layer(run: RunView, metric: str) -> list[str]:
    """What one shared layer instead of one per task saves in storage, and changes in A."""
    if "shared_layer" not in run.strategies or "task_specific" not in run.strategies:
        return []
    shared, specific = run.strategies["shared_layer"], run.strategies["task_specific"]
    a_shared, a_specific = shared.figure(metric, "average"), specific.figure(metric, "average")
    if a_shared is None or a_specific is None:
        return []
    p_shared, p_specific = shared.params.stored, specific.params.stored
    c = compare_figure(run, metric, "average", "shared_layer", "task_specific")
    return [
        f"- Sharing one layer instead of one per task stores {count(p_specific - p_shared)} fewer parameters "
        f"({count(p_shared)} vs {count(p_specific)}) and changes A by {signed(c.delta)} "
        f"({c.status}). _Rests on `params.stored` and `cl.{metric}.average`._"
        + collapse_warning(run, ("shared_layer", "task_specific"), "average")
    ]
