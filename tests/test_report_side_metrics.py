"""The "Other definitions and parts" section: the metrics the registry shows beside a headline metric,
and the evaluations whose CodeBLEU counted a zero dataflow match as a full one."""

from __future__ import annotations

import copy

from hybridcl.report import write_report
from hybridcl.run_files import ANALYSIS_FILE
from test_report import make_results, section


def with_side_metrics(results: dict) -> dict:
    """BLEU's figures copied, halved, as CodeXGLUE's BLEU; smoothed BLEU listed but never scored."""
    results = copy.deepcopy(results)
    assert {"codexglue_bleu", "smooth_bleu"} <= set(results["metrics"])  # the registry lists them
    for entry in results["strategies"].values():
        halved = copy.deepcopy(entry["cl"]["bleu"])
        halved["average"]["mean"] /= 2
        halved["average"]["values"] = [v / 2 for v in halved["average"]["values"]]
        entry["cl"]["codexglue_bleu"] = halved
        entry["cl"]["smooth_bleu"] = {figure: None for figure in halved} | {"notes": {}}
        for key in ("matrices", "matrices_summary"):
            entry[key]["codexglue_bleu"] = entry[key]["bleu"]
            entry[key]["smooth_bleu"] = entry[key]["bleu"]
        entry["efficiency"]["codexglue_bleu"] = entry["efficiency"]["smooth_bleu"] = None
    results["strategies"]["shared_layer"]["codebleu_dataflow_counted_as_one"] = [
        {"seed": 1, "stage": 2, "task": "javascript"}
    ]
    return results


def analysis(results: dict, tmp_path) -> str:
    write_report(results, tmp_path, plots=False)
    return (tmp_path / ANALYSIS_FILE).read_text()


def test_side_metrics_stand_beside_their_headline_metric_and_stay_out_of_the_headline_tables(tmp_path):
    text = analysis(with_side_metrics(make_results()), tmp_path)
    part = section(text, "Other definitions and parts")
    assert "| strategy | BLEU | BLEU (CodeXGLUE) |\n" in part  # smoothed BLEU has no score here: no column
    bleu = make_results()["strategies"]["task_specific"]["cl"]["bleu"]["average"]["mean"]
    row = next(line for line in part.splitlines() if line.startswith("| `task_specific`"))
    assert f"{bleu / 2:.4f}" in row
    assert "- `shared_layer`: seed 1 stage 2 javascript" in part
    assert "CodeXGLUE" not in section(text, "Results at a glance")


def test_no_section_without_side_metrics_or_flags(tmp_path):
    assert "## Other definitions and parts" not in analysis(make_results(), tmp_path)
