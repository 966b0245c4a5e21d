"""`analysis.md` and `plots/*.png` of a run, generated from `hybrid_experiment_results.json` alone.

Every sentence of the analysis is computed from the numbers in the results (docs/results-schema.md)
and names the figure it rests on; nothing is canned. The research questions are the seed's:

1. Component interaction: `task_specific` (LoRA + layer) vs `lora_only` and `layer_only`, on A;
2. Shared vs specific: `task_specific` (Experiment 1) vs `shared_layer` (Experiment 2) and
   `shared_layer_frozen`, on A, F, BWT and FWT;
3. Capacity allocation: A per million trainable parameters, stored parameters;
4. Continual learning: which strategy forgets least (F, BWT) and transfers most (FWT), with
   `full_finetune` (forgetting baseline) and `joint` (multitask upper bound) as references.

A verdict (a strategy called better, a hypothesis said to hold or not, a strategy named as leader)
is written only when the run has MIN_SEEDS_FOR_VERDICT seeds and the two 95% confidence intervals
(Student t, across seeds) do not overlap. Otherwise the sentence gives both means and their
difference and says why the difference is untested (too few seeds, or overlapping intervals).
Percentages of a score are n/a below cl_figures.SCORE_FLOOR, with the reason. Evaluations whose
outputs collapsed (metrics/collapse.py) are listed at the top, marked in the tables, and named next
to every statement that rests on them. Sentences use the primary metric (BLEU when the run has it);
compact tables give every metric.

Plots use matplotlib's object API on the Agg canvas (no pyplot, no global backend switch). Files are
written atomically (`hybridcl.atomic`): a temporary file in the same folder, then `os.replace`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from hybridcl.atomic import atomic_path, write_text
from hybridcl.cl_figures import FIGURES, SCORE_FLOOR, floor_reason, summarize
from hybridcl.errors import UserError
from hybridcl.metrics.collapse import MAX_REPETITION_RATE, MIN_DISTINCT_SHARE, OUTPUT_STATS, is_collapsed
from hybridcl.run_files import ANALYSIS_FILE, PLOTS_DIR, RESULTS_FILE, SCHEMA_VERSION
from hybridcl.strategies import STRATEGIES

PLOT_PATTERNS = ("accuracy_matrix_*.png", "forgetting_*.png", "score_vs_params_*.png", "loss_curves.png")


METRIC_NAMES = {
    "bleu": "BLEU",
    "meteor": "METEOR",
    "codebleu": "CodeBLEU",
    "ast_similarity": "AST similarity",
    "pass_rate": "pass rate",
    "exact_match": "exact match",
}
FIGURE_SHORT = {"average": "A", "forgetting": "F", "forgetting_rate": "forgetting rate", "bwt": "BWT", "fwt": "FWT"}
FIGURE_LONG = {
    "average": "A (average performance after the last stage)",
    "forgetting": "F (forgetting)",
    "forgetting_rate": "forgetting rate",
    "bwt": "BWT (backward transfer)",
    "fwt": "FWT (forward transfer)",
}
HIGHER_IS_BETTER = {"average": True, "forgetting": False, "forgetting_rate": False, "bwt": True, "fwt": True}
TIE = 1e-12
# Two seeds estimate the spread from a single difference (one degree of freedom): two seeds that happen
# to agree give intervals that separate on nothing. Three is the fewest seeds a verdict may rest on.
MIN_SEEDS_FOR_VERDICT = 3
LEADER_NOTE = (f"the strategy ahead on the mean, named only when resolved against the next one "
               f"(at least {MIN_SEEDS_FOR_VERDICT} seeds, separate 95% CIs)")  # fmt: skip
COLLAPSE_MARK = "⚠"
OUTPUT_STAT_NAMES = {"distinct_share": "distinct share", "repetition_rate": "repetition rate",
                     "length_ratio": "length ratio"}  # fmt: skip


class ResultsError(UserError, ValueError):
    """A results file that is missing or that this report cannot read."""


NA = "n/a"


# --------------------------------------------------------------------------------------------------
# loading and atomic writing


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


def _save_figure(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


# --------------------------------------------------------------------------------------------------
# reading the results


def _get(tree: Any, dotted: str, default: Any = None) -> Any:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _strategy_names(results: dict[str, Any]) -> list[str]:
    present = list((results.get("strategies") or {}).keys())
    known = [n for n in STRATEGIES if n in present]  # the registry's order
    return known + [n for n in present if n not in STRATEGIES]


def _metric_name(metric: str) -> str:
    return METRIC_NAMES.get(metric, metric)


def _primary_metric(results: dict[str, Any]) -> str | None:
    metrics = list(results.get("metrics") or [])
    if not metrics:  # fall back to whatever the strategies hold
        for strat in (results.get("strategies") or {}).values():
            metrics += [m for m in (strat.get("matrices") or {}) if m not in metrics]
    if not metrics:
        return None
    return "bleu" if "bleu" in metrics else metrics[0]


def _metrics(results: dict[str, Any]) -> list[str]:
    metrics = list(results.get("metrics") or [])
    for strat in (results.get("strategies") or {}).values():
        metrics += [m for m in (strat.get("matrices") or {}) if m not in metrics]
    return metrics


def _cl(results: dict[str, Any], name: str, metric: str, figure: str) -> dict[str, Any] | None:
    cl = _get(results, f"strategies.{name}.cl") or {}
    per_metric = cl.get(metric) or {}
    summary = per_metric.get(figure) if isinstance(per_metric, dict) else None
    return summary if _usable(summary) else None


def _usable(summary: Any) -> bool:
    return isinstance(summary, dict) and summary.get("mean") is not None


def _n(summary: dict[str, Any] | None) -> int:
    return int(summary.get("n") or 1) if summary else 0


def _mean(summary: dict[str, Any] | None) -> float | None:
    return float(summary["mean"]) if _usable(summary) else None


def _ci(summary: dict[str, Any]) -> tuple[float, float]:
    ci = summary.get("ci95") or [summary["mean"], summary["mean"]]
    return float(ci[0]), float(ci[1])


def _matrix(results: dict[str, Any], name: str, metric: str) -> list[list[float | None]] | None:
    m = _get(results, f"strategies.{name}.matrices.{metric}")
    return m if isinstance(m, list) and m else None


def _matrix_summary(results: dict[str, Any], name: str, metric: str) -> list[list[dict | None]] | None:
    m = _get(results, f"strategies.{name}.matrices_summary.{metric}")
    return m if isinstance(m, list) and m else None


def _cell_summaries(results: dict[str, Any], name: str, metric: str) -> list[list[dict | None]] | None:
    """Per-cell summaries; from the mean matrix (as one-value summaries) when the summaries are absent."""
    summ = _matrix_summary(results, name, metric)
    if summ is not None:
        return summ
    mean = _matrix(results, name, metric)
    if mean is None:
        return None
    return [[summarize([x]) for x in row] for row in mean]


def _per_stage_params(results: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """params.per_stage (schema); params.stages is what `count_params` itself calls it."""
    params = _get(results, f"strategies.{name}.params") or {}
    stages = params.get("per_stage") or params.get("stages") or []
    return [s for s in stages if isinstance(s, dict)]


def _trainable_max(results: dict[str, Any], name: str) -> int | None:
    stages = _per_stage_params(results, name)
    values = [s.get("trainable") for s in stages if isinstance(s, dict) and s.get("trainable") is not None]
    return max(values) if values else None


def _stored(results: dict[str, Any], name: str) -> int | None:
    return _get(results, f"strategies.{name}.params.stored")


def _base_params(results: dict[str, Any]) -> int | None:
    for name in _strategy_names(results):
        base = _get(results, f"strategies.{name}.params.base")
        if base:
            return int(base)
    return None


def _stage_count(results: dict[str, Any], name: str) -> int:
    stages = _get(results, f"strategies.{name}.stages")
    if isinstance(stages, int) and stages > 0:
        return stages
    return len(results.get("tasks") or []) if name != "joint" else 1


def _stage_tasks(results: dict[str, Any], name: str, stage: int) -> list[str]:
    for entry in _per_stage_params(results, name):
        if entry.get("stage") == stage and entry.get("tasks"):
            return list(entry["tasks"])
    tasks = list(results.get("tasks") or [])
    if name == "joint" or _stage_count(results, name) == 1 < len(tasks):
        return tasks
    return [tasks[stage - 1]] if 0 < stage <= len(tasks) else []


def _stage_label(results: dict[str, Any], name: str, stage: int) -> str:
    if stage == 0:
        return "0: base"
    tasks = _stage_tasks(results, name, stage)
    return f"{stage}: {'+'.join(tasks)}" if tasks else str(stage)


def _completed_stages(results: dict[str, Any], name: str) -> set[int]:
    done: set[int] = set()
    for metric in _metrics(results):
        m = _matrix(results, name, metric) or []
        for s, row in enumerate(m):
            if s >= 1 and any(x is not None for x in row):
                done.add(s)
    # The runner lists every stage in cost.stages, finished or not: only a measured training time counts.
    for entry in _get(results, f"strategies.{name}.cost.stages") or []:
        if isinstance(entry, dict) and isinstance(entry.get("stage"), int):
            if _usable(_get(entry, "train.wall_time_s")):
                done.add(entry["stage"])
    return done


def _freezes_finished_tasks(results: dict[str, Any], name: str) -> bool:
    """Whether the registry's strategy `name`, on this run's tasks, never trains what evaluates a finished task."""
    strategy, tasks = STRATEGIES.get(name), results.get("tasks")
    return strategy is not None and bool(tasks) and strategy.freezes_finished_tasks(tasks)


def _label(results: dict[str, Any], name: str) -> str:
    registered = STRATEGIES.get(name)
    return _get(results, f"strategies.{name}.label") or (registered.description if registered else name)


# --------------------------------------------------------------------------------------------------
# formatting


def _f(x: Any, digits: int = 4) -> str:
    """Fixed 4 decimals; values below 0.01 (e.g. BLEU of a tiny model) keep 3 significant digits."""
    if x is None:
        return NA
    x = float(x)
    if math.isnan(x):
        return NA
    if abs(x) < 1e-12:  # floating-point noise (e.g. the std of equal values)
        x = 0.0
    if x != 0 and round(abs(x), digits) < 0.01:
        return f"{x:.3g}"
    return f"{x:.{digits}f}"


def _signed(x: float, digits: int = 4) -> str:
    x = 0.0 if abs(x) < 1e-12 else float(x)
    return f"{x:+.3g}" if x != 0 and round(abs(x), digits) < 0.01 else f"{x:+.{digits}f}"


def _count(x: Any) -> str:
    return NA if x is None else f"{int(x):,}"


def _pct(x: Any) -> str:
    return NA if x is None else f"{float(x):.2f}%"


def _ms(summary: dict[str, Any] | None, fmt: Callable[[float], str] = _f) -> str:
    """'mean ± std' (several seeds), 'mean' (one seed) or n/a."""
    if not _usable(summary):
        return NA
    if _n(summary) > 1:
        mean, std = float(summary["mean"]), float(summary.get("std") or 0.0)
        std = 0.0 if std < 1e-12 else std
        if fmt is _f and (mean == 0 or round(abs(mean), 4) >= 0.01) and (std == 0 or std >= 5e-5):
            return f"{_f(mean)} ± {std:.4f}"  # the spread with the mean's decimals
        return f"{fmt(mean)} ± {fmt(std)}"
    return fmt(summary["mean"])


def _ci_text(summary: dict[str, Any] | None, fmt: Callable[[float], str] = _f) -> str:
    if not _usable(summary):
        return NA
    if _n(summary) < 2:
        return "1 seed"
    lo, hi = _ci(summary)
    return f"[{fmt(lo)}, {fmt(hi)}]"


def _mean_ci(summary: dict[str, Any] | None) -> str:
    """'mean [95% CI]' (several seeds) or 'mean' (one seed), for a sentence."""
    if not _usable(summary):
        return NA
    return _f(summary["mean"]) + (f" {_ci_text(summary)}" if _n(summary) > 1 else "")


def _ms_ci(summary: dict[str, Any] | None, fmt: Callable[[float], str] = _f) -> str:
    if not _usable(summary):
        return NA
    if _n(summary) < 2:
        return _ms(summary, fmt)
    return f"{_ms(summary, fmt)} {_ci_text(summary, fmt)}"


def _bytes(x: float) -> str:
    x = float(x)
    for unit, size, digits in (("GiB", 2**30, 2), ("MiB", 2**20, 1), ("KiB", 2**10, 1)):
        if abs(x) >= size:
            return f"{x / size:.{digits}f} {unit}"
    return f"{x:.0f} B"


def _seconds(x: float) -> str:
    return f"{float(x):.1f} s"


def _rate(x: float) -> str:
    return f"{float(x):,.0f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str] | None = None) -> list[str]:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines + [""]


def _spread(results: dict[str, Any], ci: bool = False) -> str:
    """How the table's cells read: 'mean ± std [95% CI]' with several seeds, 'one seed' otherwise."""
    n = len(results.get("seeds") or [])
    if n <= 1:
        return "one seed: no spread or confidence interval"
    return f"mean ± std over {n} seeds" + (" [95% CI]" if ci else "")


def _code(name: str) -> str:
    return f"`{name}`"


# --------------------------------------------------------------------------------------------------
# collapsed outputs


def _output_summaries(results: dict[str, Any], name: str, stat: str) -> list[list[dict | None]]:
    """One output statistic of a strategy's evaluations: a matrix (stage x task) of summaries, or []."""
    m = _get(results, f"strategies.{name}.outputs.{stat}")
    return m if isinstance(m, list) and m and isinstance(m[0], list) else []


def _has_output_stats(results: dict[str, Any], name: str) -> bool:
    """Whether any evaluation of the strategy has its output statistics (runs before them have none)."""
    return any(_usable(c) for row in _output_summaries(results, name, "distinct_share") for c in row)


def _at(matrix: list[list[Any]], stage: int, task: int) -> Any:
    return matrix[stage][task] if stage < len(matrix) and task < len(matrix[stage]) else None


def _seed_values(summary: dict[str, Any] | None) -> list[float | None]:
    if not _usable(summary):
        return []
    return _per_seed(summary) or [_mean(summary)]


def _collapsed_cells(results: dict[str, Any], name: str) -> dict[tuple[int, int], tuple[int, int]]:
    """(stage, task column) -> (seeds whose outputs collapsed there, seeds evaluated), for every cell
    that collapsed in at least one seed."""
    distinct = _output_summaries(results, name, "distinct_share")
    repetition = _output_summaries(results, name, "repetition_rate")
    collapsed = {}
    for s, row in enumerate(distinct):
        for j, cell in enumerate(row):
            distinct_values = _seed_values(cell)
            repetition_values = _seed_values(_at(repetition, s, j)) or [None] * len(distinct_values)
            flags = [is_collapsed({"distinct_share": d, "repetition_rate": r})
                     for d, r in zip(distinct_values, repetition_values)]  # fmt: skip
            if any(flags):
                collapsed[s, j] = (sum(flags), len(flags))
    return collapsed


def _figure_cells(figure: str, rows: int, tasks: int) -> set[tuple[int, int]]:
    """The cells (stage, task column) of R that a figure reads (cl_figures' formulas); 'diagonal' is R[j][j]."""
    last, earlier = rows - 1, range(tasks - 1)
    if figure == "average":
        return {(last, j) for j in range(tasks)}
    if figure == "forgetting":
        return {(s, j) for j in earlier for s in range(j + 1, rows)}
    if figure in ("forgetting_rate", "bwt"):
        return {(s, j) for j in earlier for s in (j + 1, last)}
    if figure == "fwt":
        return {(s, j) for j in range(1, tasks) for s in (0, j)}
    return {(j + 1, j) for j in range(tasks)}


def _collapsed_in(results: dict[str, Any], name: str, *figures: str) -> list[tuple[int, int]]:
    """The collapsed cells of a strategy that any of `figures` reads."""
    distinct = _output_summaries(results, name, "distinct_share")
    if not distinct:
        return []
    used = set().union(*(_figure_cells(figure, len(distinct), len(distinct[0])) for figure in figures))
    return sorted(cell for cell in _collapsed_cells(results, name) if cell in used)


def _task_name(results: dict[str, Any], column: int) -> str:
    tasks = list(results.get("tasks") or [])
    return tasks[column] if column < len(tasks) else str(column + 1)


def _cell_label(results: dict[str, Any], name: str, cell: tuple[int, int]) -> str:
    stage, task = cell
    return f"after stage {_stage_label(results, name, stage)}, on {_task_name(results, task)}"


def _collapse_warning(results: dict[str, Any], names: Iterable[str], *figures: str) -> str:
    """A warning naming the collapsed cells that `figures` read for these strategies, or ''."""
    hits = []
    for name in names:
        cells = _collapsed_in(results, name, *figures)
        if cells:
            hits.append(f"{_code(name)} ({'; '.join(_cell_label(results, name, c) for c in cells)})")
    if not hits:
        return ""
    return (f" {COLLAPSE_MARK} Rests on collapsed outputs of {', '.join(hits)}: there the metric measures the "
            "collapse, not skill (see Collapsed outputs).")  # fmt: skip


def _collapse_rule() -> str:
    return (f"collapsed = distinct share < {MIN_DISTINCT_SHARE} or repetition rate > {MAX_REPETITION_RATE} "
            "in a seed")  # fmt: skip


def _figure_text(results: dict[str, Any], name: str, metric: str, figure: str,
                 show: Callable[[dict[str, Any] | None], str] = _ms) -> str:  # fmt: skip
    """A CL figure in a table cell: n/a with the reason the results give for withholding it, and
    the collapse mark when it rests on collapsed outputs."""
    summary = _cl(results, name, metric, figure)
    if summary is None:
        note = _get(results, f"strategies.{name}.cl.{metric}.notes.{figure}")
        return f"{NA} ({note})" if note else NA
    return show(summary) + (f" {COLLAPSE_MARK}" if _collapsed_in(results, name, figure) else "")


# --------------------------------------------------------------------------------------------------
# comparisons: every sentence is built here from two summaries


def _seeds(n: int) -> str:
    return f"{n} seed{'' if n == 1 else 's'}"


def _too_few_seeds(n: int) -> str | None:
    return _seeds(n) if n < MIN_SEEDS_FOR_VERDICT else None


def _untested_reason(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """Why the difference of two summaries carries no verdict ('1 seed', '95% CIs overlap'), or None when
    it does: MIN_SEEDS_FOR_VERDICT seeds on both sides and 95% CIs that do not overlap (equal means overlap)."""
    few = _too_few_seeds(min(_n(a), _n(b)))
    if few:
        return few
    (alo, ahi), (blo, bhi) = _ci(a), _ci(b)
    return "95% CIs overlap" if alo <= bhi and blo <= ahi else None


def _status(a: dict[str, Any], b: dict[str, Any]) -> str:
    """'resolved: ...' or 'untested: <why>', to end a sentence or fill a table cell."""
    reason = _untested_reason(a, b)
    return f"untested: {reason}" if reason else f"resolved: 95% CIs separate over {_seeds(min(_n(a), _n(b)))}"


def _compare(
    a: str, sa: dict[str, Any] | None, b: str, sb: dict[str, Any] | None, higher_better: bool
) -> dict[str, Any] | None:
    """Two strategies on one figure: means, difference a − b, the one ahead on the mean (None on a tie)
    and whether that may be called a verdict (`decided`)."""
    if not (_usable(sa) and _usable(sb)):
        return None
    va, vb = _mean(sa), _mean(sb)
    tie = abs(va - vb) <= TIE
    ahead, behind = (a, b) if (va > vb) == higher_better else (b, a)
    reason = _untested_reason(sa, sb)
    return {"a": a, "b": b, "sa": sa, "sb": sb, "a_value": va, "b_value": vb, "delta": va - vb, "tie": tie,
            "winner": None if tie else ahead, "loser": None if tie else behind,
            "untested": reason, "decided": reason is None, "status": _status(sa, sb)}  # fmt: skip


def _difference_text(c: dict[str, Any]) -> str:
    """Both means (with intervals from 2 seeds on) and the signed difference, for an untested comparison."""
    return (f"{_code(c['a'])} {_mean_ci(c['sa'])} vs {_code(c['b'])} {_mean_ci(c['sb'])}, "
            f"difference ({_code(c['a'])} − {_code(c['b'])}) {_signed(c['delta'])}")  # fmt: skip


def _relative_text(diff: float, lower: float) -> str:
    """', x% of the lower value', or n/a with the reason when that value is below the score floor."""
    reason = floor_reason(lower, "the lower value")
    return f", relative difference {NA} ({reason})" if reason else f", {100 * diff / lower:.1f}% of the lower value"


def _verdict(metric: str, figure: str, a: str, b: str, results: dict[str, Any]) -> tuple[str, dict | None]:
    """One bullet comparing strategies a and b on `figure` of `metric`: a verdict when it is decided,
    else the means and their difference, untested."""
    sa, sb = _cl(results, a, metric, figure), _cl(results, b, metric, figure)
    hb = HIGHER_IS_BETTER[figure]
    head = f"**{FIGURE_SHORT[figure]}** ({_metric_name(metric)}, {'higher' if hb else 'lower'} is better)"
    source = f"_Rests on `cl.{metric}.{figure}` of {_code(a)} and {_code(b)}._"
    source += _collapse_warning(results, [a, b], figure)
    c = _compare(a, sa, b, sb, hb)
    if c is None:
        missing = [n for n, s in ((a, sa), (b, sb)) if not _usable(s)]
        return f"- {head}: {NA} for {', '.join(_code(n) for n in missing)}, so no comparison. {source}", None
    if c["tie"]:
        return f"- {head}: {_code(a)} and {_code(b)} are equal ({_f(c['a_value'])}). {source}", c
    diff = abs(c["delta"])
    rel = _relative_text(diff, min(c["a_value"], c["b_value"])) if figure == "average" else ""
    if not c["decided"]:
        return f"- {head}: {_difference_text(c)}{rel}; {c['status']}. {source}", c
    sw, sl = (sa, sb) if c["winner"] == a else (sb, sa)
    text = (f"- {head}: **{_code(c['winner'])}** is better, {_mean_ci(sw)} vs {_mean_ci(sl)} for {_code(c['loser'])} "
            f"(difference {_f(diff)}{rel}); {c['status']}. {source}")  # fmt: skip
    return text, c


def _missing_advice(missing: Sequence[str]) -> str:
    names = ", ".join(_code(n) for n in missing)
    return (
        f"Not answerable from this run: add {names} to the config's `strategies` (and rerun; finished stages are kept)."
    )


# --------------------------------------------------------------------------------------------------
# analysis.md sections


def _section_header(results: dict[str, Any], names: list[str], primary: str | None) -> list[str]:
    lines = [f"# Analysis of run `{results.get('name', '?')}`", ""]
    lines.append(
        f"Generated by `hybridcl report` on {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} "
        f"from `{RESULTS_FILE}` alone (run started {results.get('created', NA)}). Every number and every "
        "sentence below is computed from that file; rerun `hybridcl report RUN_DIR` to regenerate it."
    )
    lines.append("")
    if primary:
        lines.append(
            f"Primary metric for the sentences: **{_metric_name(primary)}**; compact tables give every metric. "
            + ("Figures across seeds are mean ± sample standard deviation, with the Student-t 95% confidence "
               "interval of the mean in brackets. "
               if len(results.get("seeds") or []) > 1 else
               "This run has one seed: figures are single values, without spread or confidence interval. ")
            + f"A difference between strategies is *resolved*, and a verdict (better, holds, supported) written, "
              f"only with at least {MIN_SEEDS_FOR_VERDICT} seeds and 95% CIs that do not overlap; otherwise the "
              "sentence gives the means and their difference and says why it is *untested*."
        )  # fmt: skip
        lines.append("")
    lines += _section_status(results, names)
    return lines


def _section_status(results: dict[str, Any], names: list[str]) -> list[str]:
    lines = ["## Status", ""]
    configured = list(_get(results, "config.strategies") or [])
    not_started = [n for n in configured if n not in names]
    missing = {}
    for name in names:
        expected = set(range(1, _stage_count(results, name) + 1))
        gone = sorted(expected - _completed_stages(results, name))
        if gone:
            missing[name] = gone
    finished = results.get("finished")
    if finished is False or missing or not_started:
        state = "**unfinished**" if finished is False else "incomplete (marked finished, but stages are missing)"
        lines.append(f"This run is {state}. Figures that need the missing stages are {NA} below.")
        lines.append("")
        for name, gone in missing.items():
            stages = ", ".join(_stage_label(results, name, s) for s in gone)
            lines.append(f"- {_code(name)}: stage(s) missing: {stages} (of {_stage_count(results, name)}).")
        for name in not_started:
            lines.append(f"- {_code(name)}: not started (in the config's `strategies`, no results yet).")
        if finished is False and not missing and not not_started:
            lines.append("- every stage of every strategy has results; the run has not yet marked itself finished.")
    else:
        lines.append(f"Finished: all stages of {len(names)} strateg{'y' if len(names) == 1 else 'ies'} have results.")
    lines.append("")
    return lines


def _section_collapse(results: dict[str, Any], names: list[str]) -> list[str]:
    if not names:
        return []
    lines = ["## Collapsed outputs", ""]
    if not any(_has_output_stats(results, n) for n in names):
        return lines + ["The results hold no output statistics (distinct share, repetition rate, length ratio), "
                        "so collapsed outputs (one string for every input, loops) are not detected here: a "
                        "metric below may measure a collapse rather than skill.", ""]  # fmt: skip
    hits = [(n, cell, seeds) for n in names for cell, seeds in sorted(_collapsed_cells(results, n).items())]
    if not hits:
        return lines + [f"No evaluation's outputs collapsed ({_collapse_rule()}; each strategy's table is "
                        "under Per strategy).", ""]  # fmt: skip
    lines += [f"**Warning**: in {len(hits)} evaluation(s) the model's outputs collapsed ({_collapse_rule()}): "
              "it emits one string for most inputs, or loops. Their metric values, and every figure marked "
              f"{COLLAPSE_MARK} below, measure the collapse, not skill:", ""]  # fmt: skip
    for name, cell, (collapsed, seeds) in hits:
        stats = ", ".join(f"{OUTPUT_STAT_NAMES[stat]} {_ms(_at(_output_summaries(results, name, stat), *cell))}"
                          for stat in OUTPUT_STATS)  # fmt: skip
        where = f" (collapsed in {collapsed} of {seeds} seeds)" if seeds > 1 else ""
        lines.append(f"- {_code(name)}, {_cell_label(results, name, cell)}: {stats}{where}")
    return lines + [""]


def _component_sizes(results: dict[str, Any]) -> dict[str, int | None]:
    """LoRA adapter and full layer sizes: from params when the runner stored them, else from the
    single-component strategies (lora_only / layer_only train exactly one component per stage)."""
    lora = layer = None
    for name in _strategy_names(results):
        p = _get(results, f"strategies.{name}.params") or {}
        lora = lora or p.get("lora_per_adapter")
        layer = layer or p.get("layer")
    present = results.get("strategies") or {}
    if lora is None and "lora_only" in present:
        lora = _trainable_max(results, "lora_only")
    if layer is None and "layer_only" in present:
        layer = _trainable_max(results, "layer_only")
    n_tasks = len(results.get("tasks") or [])
    if layer is None and "task_specific" in present and "shared_layer" in present and n_tasks > 1:
        # task_specific stores N layers, shared_layer one; both store N LoRA adapters.
        ts, sl = _stored(results, "task_specific"), _stored(results, "shared_layer")
        if ts and sl and (ts - sl) % (n_tasks - 1) == 0 and ts > sl:
            layer = (ts - sl) // (n_tasks - 1)
    if lora is None and layer and "task_specific" in present:
        per_stage = _trainable_max(results, "task_specific")
        lora = per_stage - layer if per_stage and per_stage > layer else None
    return {"lora": lora, "layer": layer, "base": _base_params(results)}


def _section_setup(results: dict[str, Any], names: list[str]) -> list[str]:
    cfg = results.get("config") or {}
    tasks = list(results.get("tasks") or [])
    direction = results.get("direction") or _get(cfg, "data.direction") or NA
    arrow = {"generate": "docstring → code", "summarize": "code → docstring"}.get(direction, "")
    seeds = list(results.get("seeds") or [])
    lines = ["## Setup", ""]
    model = _get(cfg, "model.name") or NA
    if _get(cfg, "model.random_init"):
        model += " (random init: architecture only, no pretrained weights)"
    lines.append(f"- **Model**: {model}")
    lines.append(f"- **Tasks** (in training order): {' → '.join(tasks) or NA}; direction `{direction}`"
                 + (f" ({arrow})" if arrow else ""))  # fmt: skip
    src = _get(cfg, "data.source")
    if src:
        lines.append(f"- **Data source**: `{src}`" + (f" (`{_get(cfg, 'data.hub_id')}`)" if src == "hub" else ""))
    if _get(cfg, "data.max_code_chars"):
        lines.append(f"- **Restricted** to functions whose code has at most {_get(cfg, 'data.max_code_chars')} "
                     "characters (`data.max_code_chars`; the others are skipped as `code_too_long`): they fit the "
                     "generation budget, so BLEU's brevity penalty does not measure truncation")  # fmt: skip
    lines.append(f"- **Seeds**: {', '.join(map(str, seeds)) or NA} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})")
    tr = cfg.get("train") or {}
    if tr:
        lines.append(
            f"- **Training**: {tr.get('epochs', NA)} epoch(s), batch {tr.get('batch_size', NA)}, AdamW lr "
            f"{tr.get('lr', NA)}, weight decay {tr.get('weight_decay', NA)}, warmup ratio {tr.get('warmup_ratio', NA)}, "
            f"mixed precision `{tr.get('mixed_precision', NA)}`"
        )
    sizes = _component_sizes(results)
    lo = cfg.get("lora") or {}
    lora_line = (f"- **LoRA**: r={lo.get('r', NA)}, alpha={lo.get('alpha', NA)}, dropout={lo.get('dropout', NA)}, "
                 f"target modules {', '.join(lo.get('target_modules') or []) or NA}")  # fmt: skip
    if sizes["lora"]:
        lora_line += f"; {_count(sizes['lora'])} parameters per adapter"
        if sizes["base"]:
            lora_line += f" ({_pct(100 * sizes['lora'] / sizes['base'])} of the base)"
    lines.append(lora_line)
    la = cfg.get("layer") or {}
    layer_line = f"- **Full layer**: position `{la.get('position', NA)}`, init `{la.get('init', NA)}`"
    if sizes["layer"]:
        layer_line += f"; {_count(sizes['layer'])} parameters"
        if sizes["base"]:
            layer_line += (f" ({_pct(100 * sizes['layer'] / (sizes['base'] + sizes['layer']))} of base + layer, "
                           f"{_pct(100 * sizes['layer'] / sizes['base'])} of the base)")  # fmt: skip
    else:
        layer_line += "; size not in the results (run `layer_only` or `hybridcl params` to see it)"
    lines.append(layer_line)
    if sizes["base"]:
        lines.append(f"- **Base parameters**: {_count(sizes['base'])}")
    dev = results.get("device") or {}
    if dev:
        lines.append(
            f"- **Device**: {dev.get('type', NA)} ({dev.get('name', NA)}), {dev.get('processes', 1)} process(es)"
        )
    versions = results.get("versions") or {}
    if versions:
        lines.append("- **Versions**: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append("- **Strategies**: " + ", ".join(f"{_code(n)} ({_label(results, n)})" for n in names))
    lines.append("")

    data = results.get("data") or {}
    if data:
        keys: list[str] = []
        for entry in data.values():
            keys += [k for k in ((entry or {}).get("counts") or {}) if k not in keys]
        header = ["language"] + [k.replace("_", " ") for k in keys] + ["skipped (by reason)"]
        rows = []
        for lang, entry in data.items():
            entry = entry or {}
            counts = entry.get("counts") or {}
            skips = entry.get("skips") or {}
            skip_text = ", ".join(f"{k} {int(v):,}" for k, v in skips.items()) if skips else "none"
            rows.append([lang] + [_count(counts.get(k)) for k in keys] + [skip_text])
        lines += [
            "Data (per split: *read* = records in the split, *examined* = validated in sampling order "
            "to find the records used):",
            "",
        ]
        lines += _table(header, rows, ["l"] + ["r"] * len(keys) + ["l"])
    return lines


def _section_overview(results: dict[str, Any], names: list[str], metrics: list[str], primary: str) -> list[str]:
    lines = ["## Results at a glance", ""]
    lines.append(f"Continual-learning figures on **{_metric_name(primary)}** ({_spread(results, ci=True)}):")
    lines.append("")
    rows = [[_code(n)] + [_figure_text(results, n, primary, fig, _ms_ci) for fig in FIGURES] for n in names]
    lines += _table(["strategy", "A ↑", "F ↓", "forgetting rate ↓", "BWT ↑", "FWT ↑"], rows)
    for fig in ("average", "forgetting"):
        lines.append(f"{FIGURE_LONG[fig]}, every metric ({_spread(results)}):")
        lines.append("")
        rows = [[_code(n)] + [_figure_text(results, n, m, fig) for m in metrics] for n in names]
        lines += _table(["strategy"] + [_metric_name(m) for m in metrics], rows)
    return lines


def _section_strategy(results: dict[str, Any], name: str, metrics: list[str]) -> list[str]:
    strat = results["strategies"][name]
    tasks = list(results.get("tasks") or [])
    lines = [f"### {_code(name)}: {_label(results, name)}", ""]
    where = strat.get("results_dir")
    lines.append(f"Stages: {_stage_count(results, name)}" + (f"; artifacts in `{where}/`." if where else "."))
    lines.append("")
    n_seeds = max(1, len(results.get("seeds") or []))
    lines.append(f"**Accuracy matrices** (row = after stage, column = task evaluated; "
                 f"{'mean ± std over ' + str(n_seeds) + ' seeds' if n_seeds > 1 else 'one seed'}; "
                 f"{COLLAPSE_MARK} = collapsed outputs):")  # fmt: skip
    lines.append("")
    collapsed = _collapsed_cells(results, name)
    for metric in metrics:
        cells = _cell_summaries(results, name, metric)
        if cells is None:
            lines += [f"*{_metric_name(metric)}*: {NA}", ""]
            continue
        if all(not _usable(c) for row in cells for c in row):
            lines += [f"*{_metric_name(metric)}*: {NA} in every cell (not applicable to this run's targets)", ""]
            continue
        lines += [f"*{_metric_name(metric)}*", ""]
        rows = [[_stage_label(results, name, s)]
                + [_ms(c) + (f" {COLLAPSE_MARK}" if (s, j) in collapsed else "") for j, c in enumerate(row)]
                for s, row in enumerate(cells)]  # fmt: skip
        lines += _table(["stage"] + (tasks or [str(j + 1) for j in range(len(cells[0]))]), rows)

    lines += _outputs_table(results, name, collapsed)
    lines += [f"**Continual-learning figures** ({_spread(results, ci=True)}):", ""]
    rows = [[_metric_name(m)] + [_figure_text(results, name, m, fig, _ms_ci) for fig in FIGURES] for m in metrics]
    lines += _table(["metric", "A ↑", "F ↓", "forgetting rate ↓", "BWT ↑", "FWT ↑"], rows)

    params = strat.get("params") or {}
    if params:
        lines += ["**Parameters**:", ""]
        rows = [[str(s.get("stage", "?")), "+".join(s.get("tasks") or []) or NA, _count(s.get("trainable")),
                 _pct(s.get("trainable_pct_of_base"))] for s in _per_stage_params(results, name)]  # fmt: skip
        rows.append(["stored (all tasks)", params.get("stored_what") or NA, _count(params.get("stored")),
                     _pct(params.get("stored_pct_of_base"))])  # fmt: skip
        lines += _table(["stage", "tasks", "trainable", "% of base"], rows, ["l", "l", "r", "r"])
        eff = strat.get("efficiency") or {}
        if eff:
            lines.append("A per million trainable parameters (largest stage): "
                         + "; ".join(f"{_metric_name(m)} {_ms(eff.get(m))}" for m in metrics) + ".")  # fmt: skip
            lines.append("")

    cost = strat.get("cost") or {}
    if cost.get("stages"):
        lines += [f"**Cost** per stage ({_spread(results)}; tokens/s = tokens processed per second):", ""]
        rows = []
        for st in cost["stages"]:
            tr, ev = st.get("train") or {}, st.get("eval") or {}
            kind = tr.get("peak_memory_kind")
            mem_note = {"cuda_max_allocated": " (GPU)", "process_peak_rss": " (RSS)"}.get(kind, "")
            rows.append([
                (f"{st.get('stage', '?')}" + (" (base, evaluation only)" if st.get("stage") == 0 else "")
                 + (f" (shared with {_code(st['shared_with'])})" if st.get("shared_with") else "")),
                _ms(tr.get("wall_time_s"), _seconds), _ms(tr.get("tokens_per_s"), _rate),
                _ms(tr.get("peak_memory_bytes"), _bytes) + mem_note,
                _count(tr.get("steps")), _count(tr.get("examples")),
                _ms(ev.get("wall_time_s"), _seconds), _ms(ev.get("tokens_per_s"), _rate),
                _ms(ev.get("peak_memory_bytes"), _bytes),
            ])  # fmt: skip
        header = ["stage", "train wall time", "train tokens/s", "train peak memory", "steps", "examples",
                  "eval wall time", "eval tokens/s", "eval peak memory"]  # fmt: skip
        lines += _table(header, rows)
        lines.append(f"Total: training {_ms(cost.get('train_wall_time_s'), _seconds)}, "
                     f"evaluation {_ms(cost.get('eval_wall_time_s'), _seconds)}.")  # fmt: skip
        lines.append("")
    return lines


def _collapse_flag(seeds: tuple[int, int] | None) -> str:
    """'no', or the flag with (collapsed seeds, evaluated seeds) when there are several."""
    if not seeds:
        return "no"
    return f"**collapsed** {COLLAPSE_MARK}" + (f" ({seeds[0]} of {seeds[1]} seeds)" if seeds[1] > 1 else "")


def _outputs_table(results: dict[str, Any], name: str, collapsed: dict[tuple[int, int], tuple[int, int]]
                   ) -> list[str]:  # fmt: skip
    """Distinct share, repetition rate and length ratio of every evaluation, with the collapse flag."""
    if not _has_output_stats(results, name):
        return []
    stats = {stat: _output_summaries(results, name, stat) for stat in OUTPUT_STATS}
    rows = []
    for s, row in enumerate(stats["distinct_share"]):
        for j in range(len(row)):
            rows.append([_stage_label(results, name, s), _task_name(results, j)]
                        + [_ms(_at(stats[stat], s, j)) for stat in OUTPUT_STATS]
                        + [_collapse_flag(collapsed.get((s, j)))])  # fmt: skip
    header = ["stage", "task"] + [OUTPUT_STAT_NAMES[stat] for stat in OUTPUT_STATS] + ["collapsed"]
    intro = f"**Outputs** per evaluation ({_spread(results)}; {_collapse_rule()}; definitions at the end):"
    return [intro, ""] + _table(header, rows, ["l", "l", "r", "r", "r", "l"])


def _section_rq1(results: dict[str, Any], names: list[str], metrics: list[str], primary: str) -> list[str]:
    lines = ["## RQ1: Component interaction (LoRA + full layer vs either alone)", ""]
    lines.append(
        "Compares average performance A after the last stage of `task_specific` (a LoRA adapter and a full "
        "layer per task) with `lora_only` (LoRA alone) and `layer_only` (the layer alone)."
    )
    lines.append("")
    combo = "task_specific"
    singles = [n for n in ("lora_only", "layer_only") if n in names]
    missing = [n for n in (combo, "lora_only", "layer_only") if n not in names]
    if combo not in names or not singles:
        return lines + [_missing_advice(missing), ""]
    verdicts = {}
    for single in singles:
        text, c = _verdict(primary, "average", combo, single, results)
        lines.append(text)
        verdicts[single] = c
    lines.append("")
    if len(singles) == 2 and all(verdicts.values()):
        warning = _collapse_warning(results, [combo, *singles], "average")
        lines += [_rq1_hypothesis(verdicts, combo, primary) + warning, ""]
        lines += _interaction(results, primary)
    elif missing:
        lines += [_missing_advice(missing), ""]

    shown = ", ".join(_code(n) for n in [combo] + singles)
    lines.append(f"A on every metric ({shown}; difference = `task_specific` − other; leader = {LEADER_NOTE}):")
    lines.append("")
    header = ["metric", _code(combo)] + [_code(s) for s in singles] + [f"− {_code(s)}" for s in singles] + ["leader"]
    rows = []
    for m in metrics:
        sc = _cl(results, combo, m, "average")
        row = [_metric_name(m)] + [_figure_text(results, n, m, "average") for n in [combo] + singles]
        for s in singles:
            ss = _cl(results, s, m, "average")
            row.append(f"{_signed(_mean(sc) - _mean(ss))} ({_status(sc, ss)})" if _usable(sc) and _usable(ss) else NA)
        row.append(_leader_cell([combo] + singles, lambda n, m=m: _cl(results, n, m, "average"), True))
        rows.append(row)
    lines += _table(header, rows)
    return lines


def _rq1_hypothesis(verdicts: dict[str, dict[str, Any]], combo: str, metric: str) -> str:
    """The seed's RQ1 hypothesis: holds only when both differences are decided in the combination's favour."""
    claim = "The seed's hypothesis that the combined approach outperforms either method alone"
    diffs = ", ".join(f"{_code(combo)} − {_code(s)} = {_signed(c['delta'])}" for s, c in verdicts.items())
    source = f"_Rests on `cl.{metric}.average`._"
    beaten_by = [s for s, c in verdicts.items() if c["decided"] and c["winner"] == s]
    if beaten_by:
        return (f"{claim} does not hold on {_metric_name(metric)}: {' and '.join(map(_code, beaten_by))} "
                f"{'has' if len(beaten_by) == 1 else 'have'} a higher A, resolved by these seeds (differences in A: "
                f"{diffs}). {source}")  # fmt: skip
    if all(c["decided"] for c in verdicts.values()):
        return (f"{claim} holds on {_metric_name(metric)}: A is above both single components and both "
                f"differences are resolved by these seeds (differences in A: {diffs}). {source}")  # fmt: skip
    why = "; ".join(f"vs {_code(s)}: {c['untested']}" for s, c in verdicts.items() if not c["decided"])
    return f"{claim} is untested on {_metric_name(metric)} ({why}). Differences in A: {diffs}. {source}"


def _ranked(names: Sequence[str], get: Callable[[str], dict | None], higher_better: bool
            ) -> tuple[list[tuple[str, dict]], int]:  # fmt: skip
    """The strategies with a value, ahead first, and how many are tied ahead."""
    scored = sorted(((n, get(n)) for n in names if _usable(get(n))), key=lambda t: _mean(t[1]), reverse=higher_better)
    top = _mean(scored[0][1]) if scored else None
    return scored, sum(1 for _, s in scored if abs(_mean(s) - top) <= TIE)


def _leader_cell(names: Sequence[str], get: Callable[[str], dict | None], higher_better: bool) -> str:
    """A table cell: the strategy (or tied strategies) ahead, when resolved against the next; else why not."""
    scored, tied = _ranked(names, get, higher_better)
    if len(scored) < 2:
        return NA
    if tied == len(scored):
        return "all equal"
    reason = _untested_reason(scored[0][1], scored[tied][1])
    return " = ".join(_code(n) for n, _ in scored[:tied]) if reason is None else f"untested: {reason}"


def _per_seed(summary: dict[str, Any] | None) -> list[float | None] | None:
    if not _usable(summary):
        return None
    values = summary.get("values")
    return [None if v is None else float(v) for v in values] if isinstance(values, list) and values else None


def _base_average(results: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """A of the base model (stage 0 row), per seed when the cell summaries carry per-seed values."""
    for name in _strategy_names(results):
        cells = _matrix_summary(results, name, metric)
        if cells:
            row = cells[0]
            per_cell = [_per_seed(c) for c in row]
            if all(p is not None for p in per_cell) and len({len(p) for p in per_cell}) == 1:
                seeds = len(per_cell[0])
                per_seed = []
                for k in range(seeds):
                    xs = [p[k] for p in per_cell]
                    per_seed.append(None if any(x is None for x in xs) else sum(xs) / len(xs))
                return summarize(per_seed)
        mean = _matrix(results, name, metric)
        if mean and all(x is not None for x in mean[0]):
            return summarize([sum(mean[0]) / len(mean[0])])
    return None


def _interaction(results: dict[str, Any], metric: str) -> list[str]:
    """Gains over the base (stage 0) and the 2x2 interaction contrast A_both - A_lora - A_layer + A_base."""
    s_both = _cl(results, "task_specific", metric, "average")
    s_lora = _cl(results, "lora_only", metric, "average")
    s_layer = _cl(results, "layer_only", metric, "average")
    s_base = _base_average(results, metric)
    if not all(_usable(s) for s in (s_both, s_lora, s_layer, s_base)):
        return []
    base = _mean(s_base)
    g_lora, g_layer, g_both = _mean(s_lora) - base, _mean(s_layer) - base, _mean(s_both) - base
    contrast = g_both - g_lora - g_layer
    # Per seed when every figure carries aligned per-seed values.
    series = [_per_seed(s) for s in (s_both, s_lora, s_layer, s_base)]
    summary = None
    if all(series) and len({len(s) for s in series}) == 1:
        per_seed = []
        for both, lora, layer, b in zip(*series):
            per_seed.append(None if None in (both, lora, layer, b) else both - lora - layer + b)
        summary = summarize(per_seed)
    kind = ("super-additive: together they gain more than the sum of their separate gains" if contrast > 0
            else "sub-additive: their gains overlap, together they gain less than the sum")  # fmt: skip
    text = (
        f"Gains in A over the base model (stage 0, A = {_f(base)}) on {_metric_name(metric)}: LoRA alone "
        f"{_signed(g_lora)}, layer alone {_signed(g_layer)}, both {_signed(g_both)} (sum of the separate gains "
        f"{_signed(g_lora + g_layer)}). Interaction contrast A(both) − A(LoRA) − A(layer) + A(base) = "
        f"{_signed(contrast)}"
    )
    if summary is not None and summary["n"] > 1:
        lo, hi = _ci(summary)
        text += f" (per seed {_ms(summary)}, 95% CI [{_f(lo)}, {_f(hi)}])"
    reason = _untested_vs_zero(summary)
    if reason is None:
        text += f": {kind}; resolved: the 95% CI excludes 0 over {_seeds(summary['n'])}."
    else:
        text += f"; its sign is untested: {reason}."
    text += (f" _Rests on `cl.{metric}.average` of the three strategies and stage 0 of `matrices_summary.{metric}`._"
             + _collapse_warning(results, ("task_specific", "lora_only", "layer_only"), "average"))  # fmt: skip
    return [text, ""]


def _untested_vs_zero(summary: dict[str, Any] | None) -> str | None:
    """Why a per-seed contrast's sign carries no verdict, or None when its 95% CI excludes 0 over enough seeds."""
    if summary is None:
        return "no per-seed values"
    few = _too_few_seeds(summary["n"])
    if few:
        return few
    lo, hi = _ci(summary)
    return "its 95% CI includes 0" if lo <= 0 <= hi else None


def _diagonal_mean(results: dict[str, Any], name: str, metric: str) -> dict[str, Any] | None:
    """Mean over tasks of R[j][j] (each task right after its own stage), per seed when possible."""
    cells = _matrix_summary(results, name, metric)
    n_tasks = len(results.get("tasks") or [])
    if not cells or len(cells) < n_tasks + 1 or n_tasks == 0 or _stage_count(results, name) != n_tasks:
        return None
    diag = [cells[j][j - 1] for j in range(1, n_tasks + 1)]
    per_cell = [_per_seed(c) for c in diag]
    if all(p is not None for p in per_cell) and len({len(p) for p in per_cell}) == 1:
        per_seed = []
        for k in range(len(per_cell[0])):
            xs = [p[k] for p in per_cell]
            per_seed.append(None if any(x is None for x in xs) else sum(xs) / len(xs))
        return summarize(per_seed)
    means = [_mean(c) for c in diag]
    return summarize([sum(means) / len(means)]) if all(m is not None for m in means) else None


def _section_rq2(results: dict[str, Any], names: list[str], metrics: list[str], primary: str) -> list[str]:
    lines = ["## RQ2: Shared vs specific full layer (Experiment 1 vs Experiment 2)", ""]
    lines.append(
        "Compares `task_specific` (Experiment 1: a full layer per task) with `shared_layer` (Experiment 2: one "
        "layer reused and trained at every stage)"
        + (
            " and `shared_layer_frozen` (one layer trained at stage 1, then frozen)"
            if "shared_layer_frozen" in names
            else ""
        )
        + " on A, F, BWT and FWT."
    )
    lines.append("")
    a, b = "task_specific", "shared_layer"
    if a not in names or b not in names:
        return lines + [_missing_advice([n for n in (a, b) if n not in names]), ""]
    figs = ("average", "forgetting", "bwt", "fwt")
    comparisons = []
    n_tasks = len(results.get("tasks") or [])
    for fig in figs:
        text, c = _verdict(primary, fig, a, b, results)
        lines.append(text)
        if c is not None:
            comparisons.append(c)
        if c is not None and c["tie"] and fig == "fwt" and n_tasks == 2:
            lines.append("  (With two tasks FWT only involves stage 1, which both strategies train identically, "
                         "so equal FWT is expected.)")  # fmt: skip
    lines += ["", _tally(comparisons, a, b, primary, len(figs)), ""]
    # The seed's two hypotheses, each checked against its figure.
    c = _compare(a, _diagonal_mean(results, a, primary), b, _diagonal_mean(results, b, primary), True)
    if c is not None:
        lines.append(_diagonal_hypothesis(c, primary) + _collapse_warning(results, (a, b), "diagonal"))
    transfer = {fig: _compare(a, _cl(results, a, primary, fig), b, _cl(results, b, primary, fig), True)
                for fig in ("fwt", "bwt")}  # fmt: skip
    if any(transfer.values()):
        lines.append(_transfer_hypothesis(transfer, primary) + _collapse_warning(results, (a, b), "fwt", "bwt"))
    lines.append("")
    if "shared_layer_frozen" in names:
        lines.append("`shared_layer_frozen` (the ablation: the shared layer stops training after stage 1):")
        lines.append("")
        for other in (b, a):
            for fig in ("average", "forgetting"):
                text, _ = _verdict(primary, fig, "shared_layer_frozen", other, results)
                lines.append(text)
        lines.append("")
    else:
        lines.append(
            "To separate 'shared' from 'keeps training', add `shared_layer_frozen` to the config's `strategies`."
        )
        lines.append("")
    compared = [n for n in (a, b, "shared_layer_frozen") if n in names]
    lines.append(f"Every metric ({_spread(results)}; higher is better for A, BWT, FWT, lower for F; "
                 f"leader = {LEADER_NOTE}):")  # fmt: skip
    lines.append("")
    rows = []
    for m in metrics:
        for fig in figs:
            row = [_metric_name(m), FIGURE_SHORT[fig]] + [_figure_text(results, n, m, fig) for n in compared]
            leader = _leader_cell(compared, lambda n, m=m, fig=fig: _cl(results, n, m, fig), HIGHER_IS_BETTER[fig])
            rows.append(row + [leader])
    header = ["metric", "figure"] + [_code(n) for n in compared] + ["leader"]
    lines += _table(header, rows, ["l", "l"] + ["r"] * len(compared) + ["l"])
    return lines


def _tally(compared: list[dict[str, Any]], a: str, b: str, metric: str, figures: int) -> str:
    """How many of the figures each strategy wins, counting only the decided ones."""
    head = f"Tally on {_metric_name(metric)} over these {figures} figures: "
    untested = sum(not c["decided"] and not c["tie"] for c in compared)
    ties = sum(c["tie"] for c in compared)
    rest = f"untested on {untested}, equal on {ties}"
    if len(compared) < figures:
        rest += f", {NA} on {figures - len(compared)}"
    decided = [c for c in compared if c["decided"]]
    if not decided:
        return head + f"none resolved by these seeds ({rest})."
    wins = {n: sum(c["winner"] == n for c in decided) for n in (a, b)}
    return head + f"resolved: {_code(a)} better on {wins[a]}, {_code(b)} better on {wins[b]}; {rest}."


def _diagonal_hypothesis(c: dict[str, Any], metric: str) -> str:
    """'Task-specific components give better individual task performance', on the mean diagonal R[j][j]."""
    head = (f"- Hypothesis 'task-specific components give better individual task performance': each task right "
            f"after its own stage (mean of the diagonal R[j][j], {_metric_name(metric)}): {_difference_text(c)}; "
            f"{c['status']}.")  # fmt: skip
    source = f" _Rests on the diagonal of `matrices_summary.{metric}`._"
    if not c["decided"]:
        return head + " The hypothesis is untested." + source
    return head + f" The hypothesis is {'supported' if c['winner'] == c['a'] else 'not supported'}." + source


def _transfer_hypothesis(transfer: dict[str, dict[str, Any] | None], metric: str) -> str:
    """'A shared full layer enables better cross-task transfer': supported on a figure only where shared_layer
    is ahead and the difference is decided."""
    parts, verdicts = [], {"supported": [], "not supported": [], "untested": []}
    for fig, c in transfer.items():
        if c is None:
            parts.append(f"{FIGURE_SHORT[fig]}: {NA}")
            continue
        values = f"equal ({_f(c['a_value'])})" if c["tie"] else _difference_text(c)
        parts.append(f"{FIGURE_SHORT[fig]}: {values} ({c['status']})")
        verdict = "untested" if not c["decided"] else "supported" if c["winner"] == c["b"] else "not supported"
        verdicts[verdict].append(FIGURE_SHORT[fig])
    outcome = "; ".join(f"{v} on {' and '.join(figs)}" for v, figs in verdicts.items() if figs)
    return (
        f"- Hypothesis 'a shared full layer enables better cross-task transfer': {'; '.join(parts)}. "
        f"The hypothesis is {outcome}. _Rests on `cl.{metric}.fwt` and `cl.{metric}.bwt`._"
    )


def _efficiency(results: dict[str, Any], name: str, metric: str) -> dict[str, Any] | None:
    eff = _get(results, f"strategies.{name}.efficiency.{metric}")
    if _usable(eff):
        return eff
    a, p = _cl(results, name, metric, "average"), _trainable_max(results, name)
    if _usable(a) and p:
        scale = 1e6 / p
        values = [None if v is None else v * scale for v in (_per_seed(a) or [_mean(a)])]
        return summarize(values)
    return None


def _section_rq3(results: dict[str, Any], names: list[str], metrics: list[str], primary: str) -> list[str]:
    lines = ["## RQ3: Capacity allocation (parameter efficiency)", ""]
    lines.append(
        "Trainable parameters per stage (the largest stage), parameters stored for all tasks at the end, and "
        f"A ({_metric_name(primary)}) per million trainable / stored parameters."
    )
    lines.append("")
    rows = []
    have = []
    base = _base_params(results)
    for n in names:
        train, stored = _trainable_max(results, n), _stored(results, n)
        a = _cl(results, n, primary, "average")
        eff = _efficiency(results, n, primary)
        per_stored = _f(_mean(a) * 1e6 / stored) if _usable(a) and stored else NA
        rows.append([_code(n), _count(train), _pct(100 * train / base) if train and base else NA, _count(stored),
                     _pct(_get(results, f"strategies.{n}.params.stored_pct_of_base")),
                     _get(results, f"strategies.{n}.params.stored_what") or NA,
                     _figure_text(results, n, primary, "average"), _ms(eff), per_stored])  # fmt: skip
        if train:
            have.append(n)
    header = ["strategy", "trainable / stage", "% of base", "stored", "% of base", "stored what",
              f"A ({_metric_name(primary)})", "A per M trainable", "A per M stored"]  # fmt: skip
    lines += _table(header, rows, ["l", "r", "r", "r", "r", "l", "r", "r", "r"])
    if not have:
        return lines + [f"No parameter counts in the results ({NA}).", ""]

    lines.append(_ranking_line(results, names, lambda n: _cl(results, n, primary, "average"), True, metric=primary,
                               label="A", claim="Best average performance", source=f"`cl.{primary}.average`",
                               figure="average"))  # fmt: skip
    lines.append(_ranking_line(results, have, lambda n: _efficiency(results, n, primary), True, metric=primary,
                               label="A per million trainable parameters", claim="Most efficient",
                               source=f"`efficiency.{primary}`", figure="average")
                 + " A ratio like this favours small components; read it together with A.")  # fmt: skip
    stored = [(_stored(results, n), n) for n in names if _stored(results, n)]
    if stored:
        fewest = min(stored)
        lines.append(f"- Fewest parameters stored for all tasks: {_code(fewest[1])} ({_count(fewest[0])}). "
                     "_Rests on `params.stored`._")  # fmt: skip
    # Marginal value of each added component.
    pairs = [("task_specific", "lora_only", "adding a full layer per task to LoRA"),
             ("task_specific", "layer_only", "adding a LoRA adapter per task to the full layer"),
             ("shared_layer", "task_specific", "sharing one layer instead of one per task")]  # fmt: skip
    for big, small, what in pairs:
        if big not in names or small not in names:
            continue
        sa, ss = _cl(results, big, primary, "average"), _cl(results, small, primary, "average")
        if big == "shared_layer":
            pb, ps = _stored(results, big), _stored(results, small)
            if not (pb and ps and _usable(sa) and _usable(ss)):
                continue
            d = _mean(sa) - _mean(ss)
            lines.append(
                f"- {what[0].upper() + what[1:]} stores {_count(ps - pb)} fewer parameters "
                f"({_count(pb)} vs {_count(ps)}) and changes A by {_signed(d)} ({_status(sa, ss)}). "
                f"_Rests on `params.stored` and `cl.{primary}.average`._"
                + _collapse_warning(results, (big, small), "average")
            )
            continue
        pb, ps = _trainable_max(results, big), _trainable_max(results, small)
        if not (pb and ps and _usable(sa) and _usable(ss)) or pb == ps:
            continue
        d = _mean(sa) - _mean(ss)
        lines.append(
            f"- {what[0].upper() + what[1:]} ({_code(small)} → {_code(big)}) adds {_count(pb - ps)} trainable parameters "
            f"per stage (×{pb / ps:.2f}) and changes A by {_signed(d)} ({_status(sa, ss)}): "
            f"{_signed(d * 1e6 / (pb - ps))} per added million. _Rests on `params.per_stage` and `cl.{primary}.average`._"
            + _collapse_warning(results, (big, small), "average")
        )
    sizes = _component_sizes(results)
    if sizes["lora"] and sizes["layer"]:
        lines.append(
            f"- Component sizes: one full layer ({_count(sizes['layer'])}) is {sizes['layer'] / sizes['lora']:.1f}× one LoRA "
            f"adapter ({_count(sizes['lora'])})."
        )
    missing = [n for n in ("lora_only", "layer_only") if n not in names]
    if missing:
        lines.append(f"- To weigh LoRA against the layer, add {', '.join(_code(n) for n in missing)} "
                     "to the config's `strategies`.")  # fmt: skip
    lines.append("")
    if len(metrics) > 1:
        lines.append(f"A per million trainable parameters, every metric ({_spread(results)}):")
        lines.append("")
        rows = [[_code(n)] + [_ms(_efficiency(results, n, m)) for m in metrics] for n in names]
        lines += _table(["strategy"] + [_metric_name(m) for m in metrics], rows)
    return lines


def _ranking_line(results: dict[str, Any], names: Sequence[str], get: Callable[[str], dict | None], higher_better: bool,
                  *, metric: str, label: str, claim: str, source: str, figure: str) -> str:  # fmt: skip
    """One bullet on which strategy is ahead on a figure (`label`, e.g. 'F'). `claim` ('Forgets least') heads
    it only when the leader is resolved against the next strategy; otherwise it gives the means and the
    difference, untested."""
    scored, tied = _ranked(names, get, higher_better)
    src = f"_Rests on {source}._"
    side = "highest" if higher_better else "lowest"
    claim = f"{claim} ({side} {label}, {_metric_name(metric)})"
    label = f"{label} ({_metric_name(metric)}, {'higher' if higher_better else 'lower'} is better)"
    if not scored:
        return f"- {label}: {NA} for every strategy. {src}"
    missing = [n for n in names if not _usable(get(n))]
    na = f" ({NA} for {', '.join(_code(n) for n in missing)})" if missing else ""
    warning = _collapse_warning(results, [n for n, _ in scored[: tied + 1]], figure)
    (first, top), value = scored[0], _mean(scored[0][1])
    if len(scored) == 1:
        return f"- {label}: only {_code(first)} has a value ({_mean_ci(top)}){na}, so no comparison. {src}{warning}"
    if tied == len(scored):
        return f"- {label}: all {len(scored)} strategies are equal ({_f(value)}){na}. {src}{warning}"
    leaders = [n for n, _ in scored[:tied]]
    next_name, next_summary = scored[tied]
    after = (f"next {_code(next_name)} ({_mean_ci(next_summary)}), difference {_f(abs(value - _mean(next_summary)))}; "
             f"{_status(top, next_summary)}")  # fmt: skip
    if _untested_reason(top, next_summary) is None:
        lead = (f"tie between {' and '.join(f'**{_code(n)}**' for n in leaders)} ({_f(value)})" if tied > 1
                else f"**{_code(first)}** ({_mean_ci(top)})")  # fmt: skip
        return f"- {claim}: {lead}{na}; {after}. {src}{warning}"
    return f"- {label}: {side} mean {' and '.join(map(_code, leaders))} ({_mean_ci(top)}){na}, {after}. {src}{warning}"


def _section_rq4(results: dict[str, Any], names: list[str], metrics: list[str], primary: str) -> list[str]:
    lines = ["## RQ4: Continual learning (knowledge preservation and transfer)", ""]
    seq = [n for n in names if n != "joint"]
    lines.append(
        "Among the sequential strategies (" + ", ".join(_code(n) for n in seq) + "): which forgets least "
        "(F, lower is better; BWT, higher is better) and which transfers most to a task before training on it (FWT)."
    )
    lines.append("")
    if not seq:
        return lines + [_missing_advice(["task_specific", "shared_layer"]), ""]
    n_tasks = len(results.get("tasks") or [])
    if n_tasks < 2:
        lines.append(f"With a single task there is no forgetting or transfer to measure: F, BWT and FWT are {NA}. "
                     "Add a second language to `data.languages`.")  # fmt: skip
        lines.append("")
    for figure, claim in (("forgetting", "Forgets least"), ("bwt", "Best backward transfer"),
                          ("fwt", "Most forward transfer")):  # fmt: skip
        lines.append(_ranking_line(results, seq, lambda n, f=figure: _cl(results, n, primary, f),
                                   HIGHER_IS_BETTER[figure], metric=primary, label=FIGURE_SHORT[figure], claim=claim,
                                   source=f"`cl.{primary}.{figure}`", figure=figure))  # fmt: skip
    lines.append("")
    # Design check: these strategies never train what evaluates a finished task, so F should be 0.
    for n in (s for s in seq if _freezes_finished_tasks(results, s)):
        f = _cl(results, n, primary, "forgetting")
        bw = _cl(results, n, primary, "bwt")
        if _usable(f) and _usable(bw):
            if abs(_mean(f)) <= 1e-9 and abs(_mean(bw)) <= 1e-9:
                lines.append(
                    f"- {_code(n)}: F = BWT = 0, as designed (a finished task's components are never touched again)."
                )
            else:
                lines.append(
                    f"- Check: {_code(n)} should not forget by design (its base is frozen and a finished task's "
                    f"components are never touched), but F = {_f(_mean(f))}, BWT = {_f(_mean(bw))}: inspect the run."
                )
    # References.
    if "full_finetune" in names:
        ff = _cl(results, "full_finetune", primary, "forgetting")
        others = [n for n in seq if n != "full_finetune"]
        if _usable(ff) and others:
            for n in others:
                c = _compare(n, _cl(results, n, primary, "forgetting"), "full_finetune", ff, False)
                if c is not None:
                    lines.append(_baseline_line(c) + _collapse_warning(results, (n, "full_finetune"), "forgetting"))
        elif not _usable(ff):
            lines.append(f"- `full_finetune` (forgetting baseline): F is {NA}.")
    else:
        lines.append("- No classic forgetting baseline in this run: add `full_finetune` to the config's `strategies`.")
    if "joint" in names:
        sj = _cl(results, "joint", primary, "average")
        scored = [(n, _cl(results, n, primary, "average")) for n in seq if _usable(_cl(results, n, primary, "average"))]
        if _usable(sj) and scored:
            top_name, top = max(scored, key=lambda t: _mean(t[1]))
            lines.append(
                f"- Multitask upper bound `joint`: A = {_mean_ci(sj)}; the sequential strategy with the highest mean "
                f"A, {_code(top_name)}, has A = {_mean_ci(top)}: gap (joint − it) {_signed(_mean(sj) - _mean(top))}; "
                f"{_status(sj, top)}. _Rests on `cl.{primary}.average`._"
                + _collapse_warning(results, ("joint", top_name), "average")
            )
        else:
            lines.append(f"- Multitask upper bound `joint`: A is {NA}.")
    else:
        lines.append("- No multitask upper bound in this run: add `joint` to the config's `strategies`.")
    lines.append("")
    lines.append(f"Leader on each metric among the sequential strategies (leader = {LEADER_NOTE}):")
    lines.append("")
    rows = []
    for m in metrics:
        rows.append([_metric_name(m)] + [
            _leader_cell(seq, lambda n, m=m, fig=fig: _cl(results, n, m, fig), HIGHER_IS_BETTER[fig])
            for fig in ("forgetting", "bwt", "fwt", "average")
        ])  # fmt: skip
    lines += _table(["metric", "F ↓ leader", "BWT ↑ leader", "FWT ↑ leader", "A ↑ leader"], rows, ["l"] * 5)
    return lines


def _baseline_line(c: dict[str, Any]) -> str:
    """A strategy's F against the `full_finetune` baseline (c compares them, the strategy first)."""
    name = _code(c["a"])
    if c["tie"]:
        return f"- {name} has the same F as the `full_finetune` baseline (F = {_f(c['a_value'])})."
    if not c["decided"]:
        return f"- F against the `full_finetune` baseline: {_difference_text(c)}; {c['status']}."
    more_less = "less" if c["winner"] == c["a"] else "more"
    return (f"- {name} forgets {_f(abs(c['delta']))} {more_less} than the `full_finetune` baseline "
            f"(F {_mean_ci(c['sa'])} vs {_mean_ci(c['sb'])}); {c['status']}.")  # fmt: skip


def _section_plots(plots: list[Path], notes: list[str], run_dir: Path) -> list[str]:
    lines = ["## Plots", ""]
    for p in plots:
        rel = p.relative_to(run_dir).as_posix()
        lines += [f"![{p.stem}]({rel})", ""]
    for note in notes:
        lines.append(f"- {note}")
    if notes:
        lines.append("")
    return lines


def _section_definitions() -> list[str]:
    return [
        "## Definitions",
        "",
        "R is the accuracy matrix of one metric: row s = after stage s (0 = before training), column j = task j "
        "in training order, N tasks; higher is better.",
        "",
        "- A = mean_j R[S][j] (S = last stage)",
        "- F = mean_{j<N} max_{s in j..N-1} R[s][j] − R[N][j] (Chaudhry et al. 2018), lower is better",
        "- forgetting rate = mean_{j<N} (R[j][j] − R[N][j]) / R[j][j], lower is better; "
        f"{NA} when an R[j][j] is below {SCORE_FLOOR} in some seed (a ratio over a noise-level score is noise; "
        "the same floor holds for any percentage of a score below)",
        "- BWT = mean_{j<N} R[N][j] − R[j][j] (Lopez-Paz & Ranzato 2017), higher is better",
        "- FWT = mean_{j>1} R[j-1][j] − R[0][j], higher is better",
        "- F, forgetting rate, BWT and FWT need one stage per task and at least two tasks; otherwise "
        f"(`joint`, a single task, an unfinished run) they are {NA}.",
        "- Figures are computed per seed, then summarised: mean, sample std, Student-t 95% CI of the mean.",
        f"- A verdict (better, holds, supported, a named leader) needs at least {MIN_SEEDS_FOR_VERDICT} seeds and "
        "95% CIs that do not overlap; any other difference is given with both means and called untested.",
        "",
        "Outputs of one evaluation (tokens: words/identifiers and single punctuation characters):",
        "",
        "- distinct share = distinct predictions / predictions",
        "- repetition rate = mean over predictions of the share of its tokens that end a trigram already seen "
        "earlier in the same prediction",
        "- length ratio = prediction tokens / reference tokens, over the whole set",
        f"- {_collapse_rule()}; the metrics of a collapsed evaluation measure the collapse, not skill "
        f"({COLLAPSE_MARK} marks them and every figure that reads them).",
        "",
    ]


# --------------------------------------------------------------------------------------------------
# plots


def _short(x: float) -> str:
    """A value label on a plot: 3 decimals, or 2 significant digits below 0.01."""
    return f"{x:.3f}" if x == 0 or abs(x) >= 0.01 else f"{x:.2g}"


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _seed_note(results: dict[str, Any]) -> str:
    n = len(results.get("seeds") or []) or 1
    return f"mean over {n} seeds" if n > 1 else "one seed"


def _plot_matrices(results: dict[str, Any], names: list[str], metric: str, path: Path) -> bool:
    import numpy as np
    from matplotlib import colormaps

    panels = []
    for n in names:
        cells = _cell_summaries(results, n, metric)
        if cells and any(_usable(c) for row in cells for c in row):
            panels.append((n, cells))
    if not panels:
        return False
    values = [_mean(c) for _, cells in panels for row in cells for c in row if _usable(c)]
    vmin, vmax = min(values), max(values)
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 0.05, vmax + 0.05
    tasks = list(results.get("tasks") or [])
    n_tasks = max(len(cells[0]) for _, cells in panels)
    max_rows = max(len(cells) for _, cells in panels)
    ncols = min(len(panels), 4)
    nrows = math.ceil(len(panels) / ncols)
    several = len(results.get("seeds") or []) > 1
    # Enough decimals for the largest value to show 3 significant digits (BLEU of a tiny model is ~0.001).
    top = max(abs(v) for v in values) or 1.0
    decimals = min(6, max(3, 2 - math.floor(math.log10(top))))
    cell_w = (1.25 if several else 1.0) + 0.12 * (decimals - 3)
    fig = _figure(ncols * (cell_w * n_tasks + 1.6) + 1.2, nrows * (0.62 * max_rows + 1.3) + 0.8)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    cmap = colormaps["viridis"].with_extremes(bad="#d9d9d9")
    image = None
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.set_visible(False)
            continue
        name, cells = panels[k]
        grid = np.array([[_mean(c) if _usable(c) else np.nan for c in row] for row in cells], dtype=float)
        image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        for s, row in enumerate(cells):
            for j, c in enumerate(row):
                if not _usable(c):
                    ax.text(j, s, NA, ha="center", va="center", fontsize=9, color="#444444")
                    continue
                v = _mean(c)
                text = f"{v:.{decimals}f}" + (f"\n±{float(c.get('std') or 0):.{decimals}f}" if _n(c) > 1 else "")
                light = (v - vmin) / (vmax - vmin) < 0.6
                ax.text(j, s, text, ha="center", va="center", fontsize=10, color="white" if light else "black")
        ax.set_xticks(range(len(cells[0])), labels=(tasks or [str(j + 1) for j in range(len(cells[0]))]))
        ax.set_yticks(range(len(cells)), labels=[_stage_label(results, name, s) for s in range(len(cells))])
        ax.set_xlabel("task evaluated")
        ax.set_ylabel("after stage")
        ax.set_title(name, fontsize=10, fontweight="bold")
    fig.colorbar(image, ax=axes.ravel().tolist(), label=f"{_metric_name(metric)} (0–1, higher is better)", shrink=0.9)
    fig.suptitle(f"Accuracy matrix R: {_metric_name(metric)} ({_seed_note(results)}; grey = n/a)", fontsize=11)
    _save_figure(fig, path)
    return True


def _plot_forgetting(results: dict[str, Any], names: list[str], metric: str, path: Path) -> bool:
    import numpy as np

    figs = ("forgetting", "bwt", "fwt")
    if not any(_usable(_cl(results, n, metric, f)) for n in names for f in figs):
        return False
    colors = {"forgetting": "#d62728", "bwt": "#1f77b4", "fwt": "#2ca02c"}
    legend = {"forgetting": "F: forgetting (lower is better)", "bwt": "BWT: backward transfer (higher is better)",
              "fwt": "FWT: forward transfer (higher is better)"}  # fmt: skip
    fig = _figure(max(6.5, 1.5 * len(names) + 2.5), 4.6)
    ax = fig.subplots()
    x = np.arange(len(names))
    width = 0.26
    for i, n in enumerate(names):
        if not any(_usable(_cl(results, n, metric, f)) for f in figs):  # e.g. joint: one label for the group
            ax.text(x[i], 0, f"{NA}\n(one stage)" if n == "joint" else NA, ha="center", va="bottom",
                    fontsize=9, color="#555555")  # fmt: skip
    for k, f in enumerate(figs):
        xs, means, errs = [], [], [[], []]
        for i, n in enumerate(names):
            s = _cl(results, n, metric, f)
            pos = x[i] + (k - 1) * width
            if not _usable(s):
                if any(_usable(_cl(results, n, metric, g)) for g in figs):
                    ax.text(pos, 0, NA, ha="center", va="bottom", fontsize=7, color="#555555")
                continue
            m = _mean(s)
            lo, hi = _ci(s) if _n(s) > 1 else (m, m)
            xs.append(pos)
            means.append(m)
            errs[0].append(max(0.0, m - lo))
            errs[1].append(max(0.0, hi - m))
        has_ci = any(e > 0 for side in errs for e in side)
        bars = ax.bar(xs, means, width, yerr=errs if has_ci else None, capsize=3, color=colors[f], label=legend[f])
        ax.bar_label(bars, labels=[_short(m) for m in means], fontsize=7, padding=2)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.margins(y=0.12)
    ax.set_xticks(x, labels=names, rotation=15 if len(names) > 3 else 0)
    ax.set_ylabel(f"{_metric_name(metric)} difference (0–1 scale)")
    ax.set_xlabel("strategy")
    ci = "; error bars: 95% CI" if len(results.get("seeds") or []) > 1 else ""
    ax.set_title(f"Forgetting and transfer on {_metric_name(metric)} ({_seed_note(results)}{ci})", fontsize=11)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="y", alpha=0.3)
    _save_figure(fig, path)
    return True


def _plot_score_vs_params(results: dict[str, Any], names: list[str], metric: str, path: Path) -> bool:
    from matplotlib.ticker import NullFormatter

    panels = (("trainable", "trainable parameters per stage (largest stage; log scale)", _trainable_max),
              ("stored", "parameters stored for all tasks (log scale)", _stored))  # fmt: skip
    points = {key: [] for key, _, _ in panels}
    for n in names:
        s = _cl(results, n, metric, "average")
        if not _usable(s):
            continue
        for key, _, get in panels:
            p = get(results, n)
            if p:
                points[key].append((n, float(p), s))
    if not any(points.values()):
        return False
    fig = _figure(11.5, 4.8)
    axes = fig.subplots(1, 2, sharey=True)
    cmap = {n: f"C{i}" for i, n in enumerate(names)}
    for ax, (key, xlabel, _) in zip(axes, panels):
        pts = points[key]
        if not pts:
            ax.text(0.5, 0.5, NA, transform=ax.transAxes, ha="center")
            ax.set_xlabel(xlabel)
            continue
        # Stagger labels of points that share an x position (e.g. strategies with equal stage sizes).
        groups: dict[float, list] = {}
        for n, p, s in pts:
            groups.setdefault(round(math.log10(p), 2), []).append((n, p, s))
        for group in groups.values():
            # Points sharing an x position: labels alternate right / left, so neighbours do not collide.
            group.sort(key=lambda t: _mean(t[2]))
            for k, (n, p, s) in enumerate(group):
                m = _mean(s)
                lo, hi = _ci(s) if _n(s) > 1 else (m, m)
                ax.errorbar([p], [m], yerr=[[m - lo], [hi - m]], fmt="o", color=cmap[n], capsize=3, markersize=7)
                right = k % 2 == 0
                ax.annotate(f"{n} ({_short(m)})", (p, m), xytext=(8 if right else -8, 0), textcoords="offset points",
                            ha="left" if right else "right", va="center", fontsize=8.5, color=cmap[n])  # fmt: skip
        xs = [p for _, p, _ in pts]
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 8, max(xs) * 8)
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels collide on a narrow log range
        ax.margins(y=0.1)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"A: {_metric_name(metric)} after the last stage (0–1)")
    left_out = [n for n in names if not any(n == q for key in points for q, _, _ in points[key])]
    ci = "; error bars: 95% CI" if len(results.get("seeds") or []) > 1 else ""
    title = f"Score vs parameters: {_metric_name(metric)} ({_seed_note(results)}{ci})"
    if left_out:
        title += f"\nnot shown (A or parameter count {NA}): {', '.join(left_out)}"
    fig.suptitle(title, fontsize=11)
    _save_figure(fig, path)
    return True


def _loss_series(curve: Any) -> list[float]:
    """A stage's loss curve: a flat list per optimizer step, or one list per seed (the first is used)."""
    if isinstance(curve, list) and curve and isinstance(curve[0], list):
        curve = curve[0]
    if not isinstance(curve, list):
        return []
    return [float("nan") if v is None else float(v) for v in curve]


def _plot_losses(results: dict[str, Any], names: list[str], path: Path) -> bool:
    import numpy as np

    panels = []
    for n in names:
        curves = _get(results, f"strategies.{n}.loss_curves") or {}
        series = sorted(((int(k), _loss_series(v)) for k, v in curves.items() if str(k).isdigit()), key=lambda t: t[0])
        series = [(k, v) for k, v in series if v]
        if series:
            panels.append((n, series))
    if not panels:
        return False
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(6.2 * ncols, 3.2 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for idx, ax in enumerate(axes.flat):
        if idx >= len(panels):
            ax.set_visible(False)
            continue
        name, series = panels[idx]
        offset = 0
        for k, (stage, ys) in enumerate(series):
            y = np.asarray(ys, dtype=float)
            x = offset + np.arange(1, len(y) + 1)
            color = f"C{k}"
            window = max(1, len(y) // 40)
            label = f"stage {_stage_label(results, name, stage)}"
            if window > 1:
                ax.plot(x, y, color=color, alpha=0.25, linewidth=0.8)
                kernel = np.ones(window) / window
                smooth = np.convolve(np.nan_to_num(y, nan=np.nanmean(y)), kernel, mode="valid")
                ax.plot(x[window - 1 :], smooth, color=color, linewidth=1.8, label=label + f" ({window}-step mean)")
            else:
                ax.plot(x, y, color=color, linewidth=1.6, marker="." if len(y) < 30 else None, label=label)
            if k > 0:
                ax.axvline(offset + 0.5, color="grey", linestyle=":", linewidth=1)
            offset += len(y)
        ax.set_title(name, fontsize=10, fontweight="bold")
        ax.set_xlabel("optimizer step (cumulative over stages)")
        ax.set_ylabel("training loss (token cross-entropy)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    seeds = results.get("seeds") or []
    fig.suptitle("Training loss per strategy and stage" + (f" (seed {seeds[0]})" if seeds else ""), fontsize=11)
    _save_figure(fig, path)
    return True


def _write_plots(results: dict[str, Any], names: list[str], metrics: list[str], primary: str | None,
                 run_dir: Path) -> tuple[list[Path], list[str]]:  # fmt: skip
    plots_dir = run_dir / PLOTS_DIR
    written: list[Path] = []
    notes: list[str] = []
    for metric in metrics:
        path = plots_dir / f"accuracy_matrix_{metric}.png"
        if _plot_matrices(results, names, metric, path):
            written.append(path)
        else:
            notes.append(f"No accuracy-matrix plot for {_metric_name(metric)}: {NA} in every cell.")
    if primary:
        path = plots_dir / f"forgetting_{primary}.png"
        if _plot_forgetting(results, names, primary, path):
            written.append(path)
        else:
            notes.append(f"No forgetting plot: F, BWT and FWT are {NA} for every strategy "
                         "(one task, `joint` only, or unfinished).")  # fmt: skip
        path = plots_dir / f"score_vs_params_{primary}.png"
        if _plot_score_vs_params(results, names, primary, path):
            written.append(path)
        else:
            notes.append(f"No score-vs-parameters plot: A or parameter counts are {NA}.")
    path = plots_dir / "loss_curves.png"
    if _plot_losses(results, names, path):
        written.append(path)
    else:
        notes.append("No training-loss plot: the results hold no loss curves.")
    # A plot of an earlier report that this one did not redraw (a figure now n/a) would be stale: remove it.
    # Only this module's own file names are touched.
    for pattern in PLOT_PATTERNS:
        for old in plots_dir.glob(pattern):
            if old not in written:
                old.unlink()
    return written, notes


# --------------------------------------------------------------------------------------------------
# entry point


def console_summary(results: dict[str, Any]) -> str:
    """A compact table for the terminal: A, F and BWT per strategy on the primary metric."""
    primary = _primary_metric(results)
    names = _strategy_names(results)
    if primary is None or not names:
        return "no results yet"
    figures = ("average", "forgetting", "bwt")
    n_seeds = len(results.get("seeds") or [])
    spread = f"mean ± std over {n_seeds} seeds" if n_seeds > 1 else "1 seed"
    rows = [["strategy"] + [FIGURE_SHORT[figure] for figure in figures]]
    rows += [[name] + [_mean_std(_cl(results, name, primary, figure)) for figure in figures] for name in names]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(
        [
            f"{_metric_name(primary)} ({spread}; A = average after the last stage, F = forgetting, "
            "BWT = backward transfer):",
            *table,
        ]
    )


def _mean_std(summary: dict[str, Any] | None) -> str:
    if not _usable(summary):
        return NA
    text = f"{summary['mean']:.3g}"
    return f"{text} ± {summary['std']:.1g}" if _n(summary) > 1 else text


def write_report(results: dict[str, Any], run_dir: str | Path, *, plots: bool = True) -> list[Path]:
    """Write `run_dir/analysis.md` and `run_dir/plots/*.png` from `results`; returns the paths written
    (analysis.md first). `plots=False` writes analysis.md only (existing plots are left alone).

    `results` follows docs/results-schema.md; partial results (an unfinished run, one seed, one task,
    any subset of strategies, null figures) render, with n/a where a figure is missing.
    """
    run_dir = Path(run_dir)
    names = _strategy_names(results)
    metrics = _metrics(results)
    primary = _primary_metric(results)
    written, notes = _write_plots(results, names, metrics, primary, run_dir) if plots else ([], [])

    lines = _section_header(results, names, primary)
    lines += _section_collapse(results, names)
    lines += _section_setup(results, names)
    if not names or primary is None:
        lines += ["## Results", "", f"No strategy has results yet ({NA}).", ""]
    else:
        lines += _section_overview(results, names, metrics, primary)
        lines += _section_rq1(results, names, metrics, primary)
        lines += _section_rq2(results, names, metrics, primary)
        lines += _section_rq3(results, names, metrics, primary)
        lines += _section_rq4(results, names, metrics, primary)
        lines += ["## Per strategy", ""]
        for name in names:
            lines += _section_strategy(results, name, metrics)
    if plots:
        lines += _section_plots(written, notes, run_dir)
    lines += _section_definitions()
    analysis = run_dir / ANALYSIS_FILE
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))  # sections that skipped a part leave extra blank lines
    write_text(analysis, text.rstrip() + "\n")
    return [analysis] + written
