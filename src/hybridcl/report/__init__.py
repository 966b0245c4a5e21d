"""`analysis.md` and `plots/*.png` of a run, generated from `hybrid_experiment_results.json` alone.

Every sentence of the analysis is computed from the numbers in the results (docs/results-schema.md)
and names the figure it rests on; nothing is canned. `write_report` below writes analysis.md top to
bottom; each part has its module:

- header, status, setup, protocol, results at a glance, plots, definitions: sections.py
- output checks (the flagged evaluations at the top, their definitions, the ⚠ marks everywhere): collapse.py
- RQ1, component interaction (`task_specific` vs `lora_only` and `layer_only`, on A): rq1_interaction.py
- RQ2, shared vs specific layer (`task_specific` vs `shared_layer`, `shared_layer_frozen`): rq2_sharing.py
- RQ3, capacity allocation (A per million trainable parameters, stored parameters): rq3_capacity.py
- RQ4, continual learning (F, BWT, FWT; `full_finetune` and `joint` as references): rq4_continual.py
- other definitions and parts (CodeXGLUE's BLEU, CodeBLEU's dataflow share, the dataflow quirk): side_metrics.py
- per strategy (matrices, outputs, figures, parameters, cost): per_strategy.py
- the figures: plots.py

They read the results through view.py (a typed view, built once), write numbers and tables with
text.py, and call a difference resolved, not found or untested by the rules of verdicts.py (a 95% CI
of the difference, paired bootstrap or across seeds, that excludes 0), in the sentences of
comparisons.py. Sentences use the primary metric (`task_metric`, each task's own metric, when the tasks'
metrics differ; else BLEU when the run has it); compact tables give every metric. Files are written atomically (`hybridcl.atomic`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hybridcl.atomic import write_text
from hybridcl.report import (
    collapse,
    per_strategy,
    rq1_interaction,
    rq2_sharing,
    rq3_capacity,
    rq4_continual,
    sections,
    side_metrics,
)
from hybridcl.report.plots import write_plots
from hybridcl.report.text import FIGURE_SHORT, NA, metric_label
from hybridcl.report.view import ResultsError, RunView, Summary, load_results
from hybridcl.run_files import ANALYSIS_FILE

__all__ = ["ResultsError", "console_summary", "load_results", "write_report"]


def write_report(
    results: dict[str, Any], run_dir: str | Path, *, plots: bool = True, sweep: dict | None = None
) -> list[Path]:
    """Write `run_dir/analysis.md` and `run_dir/plots/*.png` from `results`; returns the paths written
    (analysis.md first). `plots=False` writes analysis.md only (existing plots are left alone). `sweep`:
    the summary of the capacity sweep this run is a point of (hybridcl.sweep), for RQ3.

    `results` follows docs/results-schema.md; partial results (an unfinished run, one seed, one task,
    any subset of strategies, null figures) render, with n/a where a figure is missing.
    """
    run_dir = Path(run_dir)
    run = RunView.of(results)
    written, notes = write_plots(run, run_dir) if plots else ([], [])

    lines = sections.header(run)
    lines += collapse.section(run)
    lines += sections.setup(run)
    lines += sections.protocol(run)
    if run.names and run.primary:
        lines += sections.overview(run)
        lines += rq1_interaction.section(run)
        lines += rq2_sharing.section(run)
        lines += rq3_capacity.section(run, sweep)
        lines += rq4_continual.section(run)
        lines += side_metrics.section(run)
        lines += per_strategy.section(run)
    else:
        lines += sections.no_results()
    if plots:
        lines += sections.plots(written, notes, run_dir)
    lines += sections.definitions(run)
    analysis = run_dir / ANALYSIS_FILE
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))  # sections that skipped a part leave extra blank lines
    write_text(analysis, text.rstrip() + "\n")
    return [analysis] + written


def console_summary(results: dict[str, Any]) -> str:
    """A compact table for the terminal: A, F and BWT per strategy on the primary metric."""
    run = RunView.of(results)
    if run.primary is None or not run.names:
        return "no results yet"
    figures = ("average", "forgetting", "bwt")
    spread = f"mean ± std over {len(run.seeds)} seeds" if len(run.seeds) > 1 else "1 seed"
    rows = [["strategy"] + [FIGURE_SHORT[figure] for figure in figures]]
    rows += [
        [name] + [_mean_std_short(run.figure(name, run.primary, figure)) for figure in figures] for name in run.names
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    heading = (
        f"{metric_label(run.primary)} ({spread}; A = average after the last stage, F = forgetting, "
        "BWT = backward transfer):"
    )
    return "\n".join([heading, *table])


def _mean_std_short(summary: Summary | None) -> str:
    """'mean ± std' with 3 and 1 significant digits, for the terminal."""
    if summary is None:
        return NA
    return f"{summary.mean:.3g} ± {summary.std:.1g}" if summary.several else f"{summary.mean:.3g}"
