"""The "Other definitions and parts" section: the metrics the registry shows beside a headline metric,
CodeBLEU's dataflow share, and the evaluations whose CodeBLEU counted a zero dataflow match as a full
one; CodeBLEU's four parts beside it in the tables."""

from __future__ import annotations

import copy

from hybridcl.report import write_report
from hybridcl.run_files import ANALYSIS_FILE
from test_report import line_with, make_results, section

CODEBLEU_LABELS = "| CodeBLEU | CodeBLEU n-gram | CodeBLEU weighted n-gram | AST similarity | CodeBLEU dataflow |"


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


def scaled(summary: dict | None, factor: float) -> dict | None:
    if summary is None:
        return None
    values = [None if v is None else v * factor for v in summary["values"]]
    return summary | {"mean": summary["mean"] * factor, "std": summary["std"] * factor,
                      "ci95": [x * factor for x in summary["ci95"]], "values": values}  # fmt: skip


def with_codebleu_parts(results: dict, ngram: float, weighted: float) -> dict:
    """CodeBLEU's parts as shares of its figures: n-gram and weighted n-gram `ngram` and `weighted` times
    CodeBLEU, AST similarity as it is, dataflow what makes codebleu = 0.25 x (the four parts' sum)."""
    results = copy.deepcopy(results)
    for entry in results["strategies"].values():
        codebleu, ast = entry["matrices_summary"]["codebleu"][2][0], entry["matrices_summary"]["ast_similarity"][2][0]
        dataflow = 4 - ngram - weighted - ast["mean"] / codebleu["mean"]
        for part, factor in (("codebleu_ngram", ngram), ("codebleu_weighted_ngram", weighted),
                             ("codebleu_dataflow", dataflow)):  # fmt: skip
            entry["matrices"][part] = entry["matrices"]["codebleu"]
            entry["matrices_summary"][part] = [[scaled(c, factor) for c in row]
                                               for row in entry["matrices_summary"]["codebleu"]]  # fmt: skip
            cl = entry["cl"]["codebleu"]
            entry["cl"][part] = {fig: scaled(s, factor) for fig, s in cl.items() if fig != "notes"} | {"notes": {}}
            entry["efficiency"][part] = scaled(entry["efficiency"]["codebleu"], factor)
    return results


def test_codebleus_parts_stand_beside_it_and_a_dataflow_majority_is_stated_once(tmp_path):
    text = analysis(with_codebleu_parts(make_results(), ngram=0.2, weighted=0.2), tmp_path)
    glance = section(text, "Results at a glance")
    assert f"| METEOR {CODEBLEU_LABELS} pass rate |" in glance
    strategy = section(text, "Per strategy")
    assert "*CodeBLEU dataflow*" in strategy and "| CodeBLEU dataflow | " in strategy
    # codebleu's A after stage 2 of task_specific: (0.30 + 0.28) / 2 x 1.2; AST similarity 4/3 of it
    part = section(text, "Other definitions and parts")
    sentence = line_with(part, "CodeBLEU here is mostly its dataflow part")
    share = 1 - 0.25 * (0.2 + 0.2 + 1.6 / 1.2)
    assert f"for 4 of 4 strategies (`task_specific` {share:.4f}," in sentence
    assert text.count("mostly its dataflow part") == 1
    assert "A (average after the last stage) on CodeBLEU" not in part  # the parts are in the tables already


def test_no_dataflow_sentence_when_it_is_half_or_less(tmp_path):
    text = analysis(with_codebleu_parts(make_results(), ngram=0.9, weighted=0.9), tmp_path)
    assert CODEBLEU_LABELS in section(text, "Results at a glance")
    assert "mostly its dataflow part" not in text


def test_codebleu_stands_alone_where_its_parts_are_not_scored(tmp_path):
    text = analysis(make_results(), tmp_path)
    assert "| CodeBLEU | AST similarity | pass rate |" in section(text, "Results at a glance")
    assert "dataflow" not in section(text, "Results at a glance")
