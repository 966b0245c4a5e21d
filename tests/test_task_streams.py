"""Task streams other than python -> javascript: any order, and more than two tasks, end to end."""

from __future__ import annotations

import shutil

from hybridcl.continual import ContinualRun
from hybridcl.run_files import ANALYSIS_FILE, PLOTS_DIR
from smoke import smoke_config, write_smoke_language


def test_three_tasks_run_end_to_end(smoke_assets, tmp_path):
    assets = dict(smoke_assets, corpus=tmp_path / "corpus")
    shutil.copytree(smoke_assets["corpus"], assets["corpus"])
    write_smoke_language(assets["corpus"], "go")
    cfg = smoke_config(assets, "data.languages=[python,javascript,go]", "strategies=[task_specific,shared_layer]")
    results = ContinualRun(cfg, tmp_path / "run").run()
    assert results["tasks"] == ["python", "javascript", "go"]
    for entry in results["strategies"].values():
        matrix = entry["matrices"]["bleu"]  # mean over seeds: stages 0..3 x 3 tasks
        assert len(matrix) == 4 and all(len(row) == 3 for row in matrix)
        assert all(value is not None for row in matrix for value in row)
        assert entry["cl"]["bleu"]["forgetting"] is not None  # over python and javascript
        assert entry["matrices"]["pass_rate"][3][2] is None  # no grammar pinned for go
    specific = results["strategies"]["task_specific"]["matrices"]["bleu"]
    assert specific[1][0] == specific[3][0]  # a finished task's own components are never retrained
    text = (tmp_path / "run" / ANALYSIS_FILE).read_text()
    assert "3: go" in text
    assert (tmp_path / "run" / PLOTS_DIR / "accuracy_matrix_bleu.png").is_file()


def test_the_reverse_order_trains_javascript_first(smoke_assets, tmp_path):
    cfg = smoke_config(smoke_assets, "data.languages=[javascript,python]", "strategies=[task_specific]")
    results = ContinualRun(cfg, tmp_path).run()
    assert results["tasks"] == ["javascript", "python"]
    stages = results["strategies"]["task_specific"]["params"]["per_stage"]
    assert [stage["tasks"] for stage in stages] == [["javascript"], ["python"]]
    matrix = results["strategies"]["task_specific"]["matrices"]["bleu"]
    assert matrix[1][0] == matrix[2][0]  # javascript, finished first, keeps its score
