"""RQ4 puts continual-learning methods (strategies that override a hook) beside the hybrid strategies."""

from __future__ import annotations

from hybridcl.report import write_report
from hybridcl.run_files import ANALYSIS_FILE
from test_report import make_results, section


def rq4(results: dict, tmp_path) -> str:
    write_report(results, tmp_path, plots=False)
    return section((tmp_path / ANALYSIS_FILE).read_text(), "RQ4")


def test_methods_are_ranked_by_forgetting_beside_the_hybrid_strategies(tmp_path):
    results = make_results(strategies=("task_specific", "shared_layer", "lora_only"))
    results["strategies"]["ewc"] = results["strategies"].pop("shared_layer")  # a method, by its registry entry
    text = rq4(results, tmp_path)
    assert "continual-learning methods side by side" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    table_rows = rows[: rows.index(next(r for r in rows if r.startswith("| `ewc`"))) + 1]
    assert [row.split(" | ")[0] for row in table_rows] == ["| `task_specific`", "| `lora_only`", "| `ewc`"]
    stored = results["strategies"]["ewc"]["params"]["stored"]
    assert table_rows[-1].endswith(f"| {stored:,} |")


def test_no_methods_table_without_a_method(tmp_path):
    assert "side by side" not in rq4(make_results(), tmp_path)
