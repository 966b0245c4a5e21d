"""analysis.md of a task stream whose tasks have different targets and metrics (CodeTask-CL's: text -> Java,
Java -> C#, Ruby -> docstring, buggy Java -> fixed Java), from a synthetic results file built the way the
runner builds it (`hybridcl.results` over stage records).

Each task is scored with the metrics its target takes (the registry's `targets`: no CodeBLEU or pass
rate for the summarisation task's natural-language targets, CodeXGLUE's BLEU for code targets and its
smoothed BLEU for text), so the results carry `task_metric`, whose column j is task j's own metric.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from pathlib import Path
from statistics import mean

import pytest

from hybridcl.metrics import METRICS, REGISTRY
from hybridcl.report import ResultsError, console_summary, load_results, write_report
from hybridcl.report.text import TASK_METRIC_LABEL
from hybridcl.report.view import RunView
from hybridcl.results import TASK_METRIC, results_tree, strategy_comparisons, strategy_results
from hybridcl.strategies import Use, get_strategy

STREAM = {  # task -> kind, subtask, input and target language (None: natural language), headline metric
    "concode_none": ("concode", "none", None, "java", "codexglue_bleu"),
    "translate_java-cs": ("translate", "java-cs", "java", "c_sharp", "codexglue_bleu"),
    "summarize_ruby": ("summarize", "ruby", "ruby", None, "smooth_bleu"),
    "refine_small": ("refine", "small", "java", "java", "codexglue_bleu"),
}
TASK_INFO = {  # as hybridcl.data.tasks.Task.as_record() writes them
    key: {"key": key, "kind": kind, "subtask": subtask, "input_language": source, "target_language": target,
          "headline": headline, "cue": f"<{kind}> <{subtask}> "}
    for key, (kind, subtask, source, target, headline) in STREAM.items()
}  # fmt: skip
TASKS = list(TASK_INFO)
SUMMARIZE = TASKS.index("summarize_ruby")
CODE_TASKS = [j for j, task in enumerate(TASKS) if TASK_INFO[task]["target_language"] is not None]
SEEDS = (0, 1, 2)
STRATEGIES = ("task_specific", "shared_layer", "lora_only", "layer_only")

# Per strategy: score right after each task's own stage, drop of the earlier tasks by the last stage, score of a
# task not trained yet; every task's scores are its factor times these, every metric's its scale times those.
KNOBS = {
    "task_specific": {"diag": 0.30, "forget": 0.00, "zero_shot": 0.06},
    "shared_layer": {"diag": 0.29, "forget": 0.04, "zero_shot": 0.07},
    "lora_only": {"diag": 0.24, "forget": 0.00, "zero_shot": 0.05},
    "layer_only": {"diag": 0.22, "forget": 0.00, "zero_shot": 0.05},
}
BASE_SCORE = 0.05
TASK_FACTOR = (1.0, 1.1, 0.8, 1.2)
METRIC_SCALE = {"bleu": 1.0, "meteor": 1.4, "codebleu": 1.2, "ast_similarity": 1.6, "pass_rate": 2.5,
                "exact_match": 0.2, "codexglue_bleu": 1.3, "smooth_bleu": 0.9}  # fmt: skip
NOISE = (0.002, -0.002, 0.0)  # per seed, on every cell
HEALTHY = {"distinct_share": 0.97, "looping_share": 0.02, "truncated_share": 0.01, "length_ratio": 0.92,
           "wrong_language_share": 0.0}  # fmt: skip
COLLAPSED = {"distinct_share": 0.01, "looping_share": 0.96, "truncated_share": 0.9, "length_ratio": 3.1}
COLLAPSED_CELL = ("task_specific", len(TASKS), SUMMARIZE)  # after the last stage, on the summarisation task
PAIR_SKIPS = {"bad_json": 1, "empty_target": 4, "duplicate": 7}
PARAMS = {"task_specific": 3_736_576, "shared_layer": 3_736_576, "lora_only": 589_824, "layer_only": 3_146_752}
CONFIG = {
    "name": "stream",
    "data": {"source": "hub", "tasks": TASKS, "languages": ["python", "javascript"], "direction": "generate",
             "hub_id": "code-search-net/code_search_net", "max_code_chars": 300, "task_prefix": True, "n_train": 800,
             "n_valid": 200},  # CodeSearchNet's settings, which a stream of other tasks does not read
    "eval": {"split": "test", "max_new_tokens": 128},
    "model": {"name": "Salesforce/codet5-small", "random_init": False},
    "lora": {"r": 16, "alpha": 32, "dropout": 0.1, "target_modules": ["q", "v"]},
    "layer": {"position": "encoder_top", "init": "identity"},
    "train": {"epochs": 2, "batch_size": 8, "lr": 0.0005},
    "strategies": list(STRATEGIES),
}  # fmt: skip


def applies(metric: str, task: str) -> bool:
    """Whether the registry scores `metric` on the task's target (CodeBLEU's parts are left unscored here)."""
    targets = REGISTRY[metric].targets
    kind = "text" if TASK_INFO[task]["target_language"] is None else "code"
    return metric in METRIC_SCALE and targets in ("any", kind)


def score(name: str, stage: int, j: int, metric: str, noise: float) -> float:
    knobs = KNOBS[name]
    if stage == 0:
        value = BASE_SCORE
    elif j < stage - 1:
        value = knobs["diag"] - knobs["forget"]
    else:
        value = knobs["diag"] if j == stage - 1 else knobs["zero_shot"]
    return METRIC_SCALE[metric] * TASK_FACTOR[j] * value + noise


def evaluation(name: str, stage: int, j: int, noise: float) -> dict:
    """One task's entry of a stage record's `eval`, as the runner writes it."""
    task = TASKS[j]
    scores = {m: score(name, stage, j, m, noise) if applies(m, task) else None for m in METRICS}
    outputs = dict(HEALTHY)
    if j == SUMMARIZE:
        outputs["wrong_language_share"] = None  # no language to parse natural-language outputs as
    if (name, stage, j) == COLLAPSED_CELL:
        outputs |= COLLAPSED
    strategy = get_strategy(name)
    return {
        "scores": scores | outputs,
        "notes": {m: "not defined for this target" for m, v in scores.items() if v is None},
        "components": dataclasses.asdict(strategy.evaluation(TASKS, stage, task) if stage else Use()),
        "cost": {"wall_time_s": 10.0, "generated_tokens": 40_000, "tokens_per_s": 4_000.0,
                 "peak_memory_bytes": 1_000_000_000, "peak_memory_kind": "process_peak_rss", "score_time_s": 2.0},
    }  # fmt: skip


def seed_records(name: str, seed: int, noise: float) -> list[dict]:
    records = []
    for stage in range(len(TASKS) + 1):
        train = None
        if stage:
            train = {"losses": [2.0, 1.5, 1.2], "steps": 3, "examples": 24, "target_tokens": 900, "wall_time_s": 5.0,
                     "tokens_per_s": 180.0, "peak_memory_bytes": 2_000_000_000, "peak_memory_kind": "process_peak_rss",
                     "trainable_params": PARAMS[name]}  # fmt: skip
        evals = {task: evaluation(name, stage, j, noise) for j, task in enumerate(TASKS)}
        records.append({"stage": stage, "seed": seed, "shared_with": None, "train": train, "eval": evals})
    return records


def params(name: str) -> dict:
    stages = get_strategy(name).stages(TASKS)
    per_stage = [{"stage": s.index, "tasks": list(s.tasks), "trainable": PARAMS[name],
                  "trainable_pct_of_base": 100 * PARAMS[name] / 60_492_288} for s in stages]  # fmt: skip
    return {"strategy": name, "tasks": TASKS, "base": 60_492_288, "lora_per_adapter": 589_824, "lora_modules": 36,
            "layer": 3_146_752, "num_loras": 4, "num_layers": 4, "per_stage": per_stage, "stored": 4 * PARAMS[name],
            "stored_pct_of_base": 400 * PARAMS[name] / 60_492_288, "stored_what": "4 LoRA + 4 layer(s)"}  # fmt: skip


def stream_results() -> tuple[dict, dict]:
    """(the results, each strategy's records[seed][stage])."""
    records = {name: [seed_records(name, seed, NOISE[i]) for i, seed in enumerate(SEEDS)] for name in STRATEGIES}
    headlines = {task: info["headline"] for task, info in TASK_INFO.items()}
    entries = {
        name: strategy_results(get_strategy(name), TASKS, records[name], params(name), headlines=headlines)
        for name in STRATEGIES
    }
    counts = {"train_read": 100_000, "train_examined": 812, "train": 800, "test_read": 2_000, "test_examined": 200,
              "test": 200}  # fmt: skip
    results = results_tree(
        CONFIG,
        created="2026-12-10T10:00:00+00:00",
        versions={"hybridcl": "0.1.0"},
        device={"type": "cpu", "name": "test cpu", "processes": 1},
        seeds=list(SEEDS),
        data={task: {"counts": counts, "skips": PAIR_SKIPS} for task in TASKS},
        strategies=entries,
        finished=True,
        comparisons=strategy_comparisons(TASKS, records),
        task_info=TASK_INFO,
    )
    return results, records


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    results, records = stream_results()
    run_dir = tmp_path_factory.mktemp("stream")
    paths = write_report(results, run_dir)
    return results, records, paths, (run_dir / "analysis.md").read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def table_after(text: str, title: str) -> list[dict[str, str]]:
    """The markdown table after the first occurrence of `title`: one {column: cell} per row."""
    lines = text[text.index(title) :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = itertools.takewhile(lambda line: line.startswith("|"), lines[start:])
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split(" | ")] for line in block]
    return [dict(zip(header, row)) for row in rows]


def row_of(rows: list[dict[str, str]], first: str) -> dict[str, str]:
    return next(row for row in rows if next(iter(row.values())) == first)


A_EVERY_METRIC = "A (average performance after the last stage), every metric"


def test_the_primary_metric_is_each_tasks_own(stream):
    results, _, _, text = stream
    assert results["metrics"][0] == TASK_METRIC and results["direction"] is None
    assert RunView.of(results).primary == TASK_METRIC
    for name in STRATEGIES:
        matrices = results["strategies"][name]["matrices"]
        for j, task in enumerate(TASKS):
            own = [row[j] for row in matrices[TASK_INFO[task]["headline"]]]
            assert [row[j] for row in matrices[TASK_METRIC]] == own != [row[j] for row in matrices["bleu"]]
    line = next(line for line in text.splitlines() if line.startswith("Primary metric for the sentences"))
    assert "**each task's own metric**" in line
    assert ("`concode_none`: BLEU (CodeXGLUE), `translate_java-cs`: BLEU (CodeXGLUE), `summarize_ruby`: smoothed "
            "BLEU (CodeXGLUE), `refine_small`: BLEU (CodeXGLUE)") in line  # fmt: skip
    assert "Continual-learning figures on **each task's own metric**" in text


def test_codebleu_is_averaged_over_the_tasks_that_have_it(stream):
    results, records, _, text = stream
    for name in STRATEGIES:
        per_seed = [
            mean(seed[-1]["eval"][TASKS[j]]["scores"]["codebleu"] for j in CODE_TASKS) for seed in records[name]
        ]
        assert results["strategies"][name]["cl"]["codebleu"]["average"]["values"] == pytest.approx(per_seed)
    # task_specific forgets nothing: its last row is each task's own-stage score, 1.2 x 0.30 x the task's factor
    a = results["strategies"]["task_specific"]["cl"]["codebleu"]["average"]["mean"]
    assert a == pytest.approx(mean(1.2 * 0.30 * TASK_FACTOR[j] for j in CODE_TASKS))
    shown = row_of(table_after(text, A_EVERY_METRIC), "`task_specific`")["CodeBLEU"]
    assert shown.startswith(f"{a:.4f} ± ")
    assert "Here: CodeBLEU, AST similarity, pass rate without `summarize_ruby`." in section(text, "Definitions")


def test_the_summarisation_column_is_na_for_codebleu_and_pass_rate(stream):
    _, _, _, text = stream
    per = section(text, "Per strategy")
    ts = per[per.index("### `task_specific`") : per.index("### `shared_layer`")]
    for metric in ("CodeBLEU", "pass rate"):
        rows = table_after(ts, f"\n*{metric}*\n")
        assert len(rows) == len(TASKS) + 1
        for row in rows:
            assert row["summarize_ruby"] == "n/a", (metric, row)
            assert all(re.fullmatch(r"\d\.\d{4} ± \d\.\d{4}", row[TASKS[j]]) for j in CODE_TASKS), (metric, row)
    outputs = table_after(ts, "**Outputs** per evaluation")
    assert {row["pass rate"] for row in outputs if row["task"] == "summarize_ruby"} == {"n/a"}
    assert all(row["pass rate"] != "n/a" for row in outputs if row["task"] != "summarize_ruby")


def test_a_flagged_summarisation_output_marks_only_the_figures_that_read_it(stream):
    _, _, _, text = stream
    a = row_of(table_after(text, A_EVERY_METRIC), "`task_specific`")
    assert a["BLEU"].endswith("⚠") and a[TASK_METRIC_LABEL].endswith("⚠")  # they read the collapsed outputs
    assert not a["CodeBLEU"].endswith("⚠") and not a["pass rate"].endswith("⚠")  # they leave that task out


def test_setup_and_protocol_show_each_tasks_io_cue_and_skips(stream):
    _, _, _, text = stream
    setup, protocol = section(text, "Setup"), section(text, "Protocol")
    tasks_line = next(line for line in setup.splitlines() if line.startswith("- **Tasks**"))
    assert tasks_line == (
        "- **Tasks** (in training order): `concode_none` (text → java), `translate_java-cs` (java → c_sharp), "
        "`summarize_ruby` (ruby → text), `refine_small` (java → java)"
    )
    assert "code-search-net" not in setup and "code_too_long" not in setup
    data = table_after(setup, "Data (per split")
    assert [row["task"] for row in data] == TASKS
    assert {row["skipped (by reason)"] for row in data} == {"bad_json 1, empty_target 4, duplicate 7"}
    input_line = next(line for line in protocol.splitlines() if line.startswith("- **Input**"))
    assert "`<concode> <none> `, `<translate> <java-cs> `, `<summarize> <ruby> `, `<refine> <small> `" in input_line
    assert "generate" not in input_line
    assert "each task's `test` split" in protocol
    for label in ("BLEU (CodeXGLUE)", "smoothed BLEU (CodeXGLUE)", "CodeBLEU", "pass rate", TASK_METRIC_LABEL):
        assert f"  - {label}: " in protocol, label


def test_plots_and_terminal_summary_name_each_tasks_metric(stream):
    results, _, paths, _ = stream
    names = {path.name for path in paths[1:]}
    assert {"accuracy_matrix_task_metric.png", "forgetting_task_metric.png", "score_vs_params_task_metric.png"} <= names
    assert console_summary(results).startswith(f"{TASK_METRIC_LABEL} (mean ± std over 3 seeds;")


def test_results_without_task_info_are_codesearchnet_languages():
    old = RunView.of(load_results(Path(__file__).parent / "data" / "report" / "smoke-7-strategies-3-seeds.json"))
    assert old.direction == "generate" and old.primary == "bleu"
    assert {task: (info.io_text, info.headline, info.cue) for task, info in old.task_info.items()} == {
        task: (f"text → {task}", "bleu", f"generate {task}: ") for task in old.tasks
    }


def test_a_task_without_its_task_info_is_a_one_line_error():
    results, _ = stream_results()
    del results["task_info"]["refine_small"]["cue"]
    with pytest.raises(ResultsError, match=r"^task_info.refine_small lacks cue$"):
        RunView.of(results)
    del results["task_info"]["refine_small"]
    with pytest.raises(ResultsError, match=r"^task_info has no entry for task\(s\) refine_small$"):
        RunView.of(results)
