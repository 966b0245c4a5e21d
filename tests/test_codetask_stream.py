"""configs/codetask-cl.yaml, offline: CodeTask-CL's four-task stream through the same CLI call a GPU user
makes, on a replica of CodeT5's data folder, with the micro stand-in base at smoke sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridcl.cli import main
from hybridcl.config import load_config
from hybridcl.data.codexglue_replicas import write_codet5_folder, write_hub_cache
from hybridcl.run_files import ANALYSIS_FILE, RESULTS_FILE
from hybridcl.settings import ConfigError

CODETASK = Path(__file__).parents[1] / "configs" / "codetask-cl.yaml"
STREAM = ["concode_none", "translate_java-cs", "summarize_ruby", "refine_small"]
HEADLINES = {
    "concode_none": "codexglue_bleu",
    "translate_java-cs": "codexglue_bleu",
    "summarize_ruby": "smooth_bleu",
    "refine_small": "codexglue_bleu",
}
SMOKE_SIZES = [
    "data.n_train=16",
    "data.n_valid=6",
    "data.max_source_tokens=48",
    "data.max_target_tokens=48",
    "train.epochs=1",
    "train.warmup_steps=2",
    "eval.batch_size=8",
    "eval.max_new_tokens=24",
    "lora.r=4",
    "lora.alpha=8",
    "cl.replay_size=8",
    "cl.ewc_fisher_examples=8",
]


def stream_args(assets: dict, data: Path, out: Path) -> list[str]:
    settings = [f"data.source={data}", f"model.name={assets['base']}", f"data.cache_dir={assets['cache']}"]
    return ["run", str(CODETASK), "--out", str(out), *(arg for s in settings + SMOKE_SIZES for arg in ("--set", s))]


@pytest.fixture(scope="module")
def stream_run(smoke_assets, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("codetask")
    data = write_codet5_folder(root / "data")
    out = root / "run"
    assert main(stream_args(smoke_assets, data, out)) == 0
    return out


def test_the_config_names_the_benchmark_stream_and_settings():
    cfg = load_config(CODETASK)
    assert cfg.task_keys == tuple(STREAM)
    assert {task.key: task.headline for task in cfg.tasks} == HEADLINES
    assert (cfg.train.batch_size, cfg.train.warmup_steps, cfg.data.n_train, cfg.data.n_valid) == (8, 500, 0, 5000)
    assert cfg.strategies == ("task_specific", "shared_layer", "lora_only", "replay", "ewc")
    assert (cfg.cl.replay_size, cfg.cl.replay_policy) == (500, "ring")
    assert [task.target_language for task in cfg.tasks] == ["java", "c_sharp", None, "java"]


@pytest.mark.parametrize(
    "name, expected",
    [("concod_none", "unknown task 'concod_none'"), ("translate_java-go", "has no subtask 'java-go'")],
)
def test_an_unknown_task_is_refused_naming_it(name, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(CODETASK, [f"data.tasks=[{name}]"])


def test_the_stream_runs_and_scores_each_task_with_its_own_metrics(stream_run):
    results = json.loads((stream_run / RESULTS_FILE).read_text())
    assert results["finished"] and results["tasks"] == STREAM and results["direction"] is None
    assert results["metrics"][0] == "task_metric"
    assert {key: info["headline"] for key, info in results["task_info"].items()} == HEADLINES
    for name, strategy in results["strategies"].items():
        matrices = strategy["matrices"]
        assert len(matrices["task_metric"]) == 5 and all(len(row) == 4 for row in matrices["task_metric"]), name
        for column, task in enumerate(STREAM):
            own = [row[column] for row in matrices[HEADLINES[task]]]
            assert [row[column] for row in matrices["task_metric"]] == own
        codebleu_last = matrices["codebleu"][-1]
        assert codebleu_last[0] is not None and codebleu_last[1] is not None  # concode, translation
        assert codebleu_last[2] is None and matrices["pass_rate"][-1][2] is None  # natural-language targets
        assert matrices["smooth_bleu"][-1][2] is not None and matrices["smooth_bleu"][-1][0] is None
        assert all(cell is not None for cell in matrices["exact_match"][-1])
        assert strategy["cl"]["codebleu"]["average"] is not None  # over the two tasks that have it
    rows = [json.loads(line) for line in (stream_run / "stage0").rglob("translate_java-cs.jsonl").__next__().open()]
    assert rows and all(row["source"].startswith("<translate> <java-cs> ") for row in rows)


def test_the_default_source_reads_the_hubs_codexglue_datasets_to_the_same_results(
    stream_run, smoke_assets, tmp_path, monkeypatch
):
    """data.source=hub, offline from a Hugging Face cache holding the four datasets' parquet files (the same
    examples as the folder replica): the same sample, so the same figures."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    commits = write_hub_cache(tmp_path / "hf")
    args = stream_args(smoke_assets, "hub", tmp_path / "run") + ["--set", "strategies=[task_specific]"]
    assert main(args) == 0
    results = json.loads((tmp_path / "run" / RESULTS_FILE).read_text())
    assert {results["sources"][f"data {task}"]["commit"] for task in STREAM} == set(commits.values())
    folder = json.loads((stream_run / RESULTS_FILE).read_text())["strategies"]["task_specific"]["matrices"]
    assert results["strategies"]["task_specific"]["matrices"] == folder


def test_the_report_heads_with_each_tasks_own_metric(stream_run):
    analysis = (stream_run / ANALYSIS_FILE).read_text()
    assert "each task's own metric" in analysis
    for task in STREAM:
        assert task in analysis


def test_params_prints_exact_counts_for_the_stream(smoke_assets, capsys):
    assert main(["params", "--config", str(CODETASK), "--set", f"model.name={smoke_assets['base']}"]) == 0
    out = capsys.readouterr().out
    for strategy in ("task_specific", "shared_layer", "lora_only", "replay", "ewc"):
        assert strategy in out
