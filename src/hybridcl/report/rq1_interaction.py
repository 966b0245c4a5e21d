"""## RQ1 in analysis.md: component interaction. Is a LoRA adapter plus a full layer per task
(`task_specific`) better than either alone (`lora_only`, `layer_only`), on A? Also the seed's
hypothesis that the combination wins, and the 2x2 interaction contrast over the base model."""

from __future__ import annotations

from hybridcl.report.collapse import collapse_warning, figure_cell
from hybridcl.report.comparisons import compare_figure, leader_cell, missing_advice, verdict_bullet
from hybridcl.report.text import NA, code, codes, mean_std, metric_label, number, seed_count, signed, table
from hybridcl.report.verdicts import LEADER_NOTE, Comparison, untested_vs_zero
from hybridcl.report.view import RunView, Summary, summary_of

COMBINED, LORA, LAYER = "task_specific", "lora_only", "layer_only"


def section(run: RunView) -> list[str]:
    lines = ["## RQ1: Component interaction (LoRA + full layer vs either alone)", ""]
    lines.append(
        "Compares average performance A after the last stage of `task_specific` (a LoRA adapter and a full "
        "layer per task) with `lora_only` (LoRA alone) and `layer_only` (the layer alone)."
    )
    lines.append("")
    singles = [name for name in (LORA, LAYER) if name in run.strategies]
    missing = [name for name in (COMBINED, LORA, LAYER) if name not in run.strategies]
    if COMBINED not in run.strategies or not singles:
        return lines + [missing_advice(missing), ""]
    comparisons = {}
    for single in singles:
        text, comparisons[single] = verdict_bullet(run, run.primary, "average", COMBINED, single)
        lines.append(text)
    lines.append("")
    if len(singles) == 2 and all(comparisons.values()):
        warning = collapse_warning(run, [COMBINED, *singles], "average")
        lines += [hypothesis(comparisons, run.primary) + warning, ""]
        lines += interaction(run, run.primary)
    elif missing:
        lines += [missing_advice(missing), ""]
    return lines + every_metric_table(run, singles)


def hypothesis(comparisons: dict[str, Comparison], metric: str) -> str:
    """The seed's RQ1 hypothesis: holds only when both differences are resolved in the combination's favour."""
    claim = "The seed's hypothesis that the combined approach outperforms either method alone"
    diffs = ", ".join(f"{code(COMBINED)} − {code(s)} = {signed(c.delta)}" for s, c in comparisons.items())
    source = f"_Rests on `cl.{metric}.average`._"
    beaten_by = [s for s, c in comparisons.items() if c.decided and c.winner == s]
    if beaten_by:
        return (
            f"{claim} does not hold on {metric_label(metric)}: {codes(beaten_by, ' and ')} "
            f"{'has' if len(beaten_by) == 1 else 'have'} a higher A, resolved (differences in A: {diffs}). {source}"
        )
    if all(c.decided for c in comparisons.values()):
        return (
            f"{claim} holds on {metric_label(metric)}: A is above both single components and both "
            f"differences are resolved (differences in A: {diffs}). {source}"
        )
    why = "; ".join(f"vs {code(s)}: {c.why_no_verdict}" for s, c in comparisons.items() if not c.decided)
    return f"{claim} is untested on {metric_label(metric)} ({why}). Differences in A: {diffs}. {source}"


def contrast_per_seed(both: Summary, lora: Summary, layer: Summary, base: Summary) -> Summary | None:
    """A(both) − A(LoRA) − A(layer) + A(base), seed by seed, summarised."""
    per_seed = [
        None if None in seed else seed[0] - seed[1] - seed[2] + seed[3]
        for seed in zip(both.values, lora.values, layer.values, base.values)
    ]
    return summary_of(per_seed)


def interaction(run: RunView, metric: str) -> list[str]:
    """Gains over the base (stage 0) and the 2x2 interaction contrast A_both - A_lora - A_layer + A_base."""
    both, lora, layer = (run.figure(name, metric, "average") for name in (COMBINED, LORA, LAYER))
    base = run.base_average(metric)
    if None in (both, lora, layer, base):
        return []
    gain_lora, gain_layer, gain_both = lora.mean - base.mean, layer.mean - base.mean, both.mean - base.mean
    contrast = gain_both - gain_lora - gain_layer
    per_seed = contrast_per_seed(both, lora, layer, base)
    kind = (
        "super-additive: together they gain more than the sum of their separate gains"
        if contrast > 0
        else "sub-additive: their gains overlap, together they gain less than the sum"
    )
    text = (
        f"Gains in A over the base model (stage 0, A = {number(base.mean)}) on {metric_label(metric)}: LoRA alone "
        f"{signed(gain_lora)}, layer alone {signed(gain_layer)}, both {signed(gain_both)} (sum of the separate "
        f"gains {signed(gain_lora + gain_layer)}). Interaction contrast A(both) − A(LoRA) − A(layer) + A(base) = "
        f"{signed(contrast)}"
    )
    if per_seed is not None and per_seed.several:
        low, high = per_seed.ci95
        text += f" (per seed {mean_std(per_seed)}, 95% CI [{number(low)}, {number(high)}])"
    reason = untested_vs_zero(per_seed)
    if reason is None:
        text += f": {kind}; resolved: the 95% CI excludes 0 over {seed_count(per_seed.n)}."
    else:
        text += f"; its sign is untested: {reason}."
    text += (
        f" _Rests on `cl.{metric}.average` of the three strategies and stage 0 of `matrices_summary.{metric}`._"
        + collapse_warning(run, (COMBINED, LORA, LAYER), "average")
    )
    return [text, ""]


def every_metric_table(run: RunView, singles: list[str]) -> list[str]:
    """A of the combination and the single components on every metric, their differences and the leader."""
    compared = [COMBINED] + singles
    lines = [
        f"A on every metric ({codes(compared)}; difference = `task_specific` − other; leader = {LEADER_NOTE}):",
        "",
    ]
    header = ["metric", code(COMBINED)] + [code(s) for s in singles] + [f"− {code(s)}" for s in singles] + ["leader"]
    rows = []
    for metric in run.metrics:
        row = [metric_label(metric)] + [figure_cell(run, name, metric, "average") for name in compared]
        for single in singles:
            c = compare_figure(run, metric, "average", COMBINED, single)
            row.append(NA if c is None else f"{signed(c.delta)}, {c.cell_status}")
        row.append(leader_cell(run, compared, metric, "average"))
        rows.append(row)
    return lines + table(header, rows)
