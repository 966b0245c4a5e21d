"""analysis.md and plots from a synthetic results file, built the way the runner builds it.

The numbers are made up but consistent: each seed's accuracy matrix is built from a few knobs per
strategy (score right after a task's own stage, forgetting of task 1, zero-shot score on task 2) and
written into stage records, the runner's `stage.json` of each seed and stage (every evaluation's scores,
output statistics and cost; every training's losses and cost). The results file is then built from
those records by `hybridcl.results`, as `ContinualRun.collect` builds it, so that every figure
(matrices, summaries, CL figures, efficiency, cost) is the runner's. Tests then turn the knobs and
check that the generated sentences follow the numbers.

Verdicts ("is better", "holds", "supported", a named leader) need a 95% interval of the difference that
excludes 0: across 3 seeds or more (`three_seed_report`), or the paired bootstrap over examples, which
needs the evaluations' per-example BLEU statistics (`make_results(examples=...)`). The 2-seed
`full_report` has neither, so no verdict.
"""

import copy
import dataclasses
import json
import random
import re
import struct
from pathlib import Path

import pytest

from hybridcl.bootstrap import corpus_bleu_from_stats
from hybridcl.cl_figures import summarize
from hybridcl.metrics import METRICS, OUTPUT_STATS, REGISTRY
from hybridcl.report import ResultsError, console_summary, load_results, write_report
from hybridcl.report.text import number
from hybridcl.results import results_tree, strategy_comparisons, strategy_results
from hybridcl.run_files import RESULTS_FILE, SCHEMA_VERSION
from hybridcl.strategies import Components, Strategy, Use, get_strategy, shared_prefix

HEADLINE_METRICS = [m for m in METRICS if REGISTRY[m].headline]  # the report's tables, sentences and plots
BASE = 60_492_288
LORA = 589_824
LORA_MODULES = 36  # q and v of CodeT5-small's attentions: 6 encoder blocks x 1, 6 decoder blocks x 2
LAYER = 3_146_752

# Per strategy: score right after each task's own stage (diag), drop of task 1 after stage 2 (forget),
# zero-shot score on task 2 after stage 1 (zero_shot). Base model scores: BASE_ROW.
BASE_ROW = [0.05, 0.04]
KNOBS = {
    "task_specific": {"diag": [0.30, 0.28], "forget": 0.00, "zero_shot": 0.06},
    "shared_layer": {"diag": [0.30, 0.27], "forget": 0.04, "zero_shot": 0.06},
    "shared_layer_frozen": {"diag": [0.30, 0.25], "forget": 0.01, "zero_shot": 0.06},
    "lora_only": {"diag": [0.24, 0.22], "forget": 0.00, "zero_shot": 0.05},
    "layer_only": {"diag": [0.22, 0.20], "forget": 0.00, "zero_shot": 0.05},
    "full_finetune": {"diag": [0.35, 0.33], "forget": 0.15, "zero_shot": 0.07},
    "joint": {"diag": [0.31, 0.29], "forget": 0.0, "zero_shot": 0.0},
}
PARAMS = {  # trainable per stage, stored for all tasks, stored_what (two tasks)
    "task_specific": ([LORA + LAYER, LORA + LAYER], 2 * (LORA + LAYER), "2 LoRA + 2 layer(s)"),
    "shared_layer": ([LORA + LAYER, LORA + LAYER], 2 * LORA + LAYER, "2 LoRA + 1 layer(s)"),
    "shared_layer_frozen": ([LORA + LAYER, LORA], 2 * LORA + LAYER, "2 LoRA + 1 layer(s)"),
    "lora_only": ([LORA, LORA], 2 * LORA, "2 LoRA + 0 layer(s)"),
    "layer_only": ([LAYER, LAYER], 2 * LAYER, "0 LoRA + 2 layer(s)"),
    "full_finetune": ([BASE, BASE], BASE, "whole base"),
    "joint": ([LORA + LAYER], LORA + LAYER, "1 LoRA + 1 layer(s)"),
}
# The headline metrics' scores are the knobs' times this; the other metrics of the registry (CodeXGLUE's
# BLEU, CodeBLEU's parts, ...) are not scored here (None), so the report shows no side metrics by default.
METRIC_SCALE = {
    "bleu": 1.0,
    "meteor": 1.4,
    "codebleu": 1.2,
    "ast_similarity": 1.6,
    "pass_rate": 2.5,
    "exact_match": 0.2,
}
assert set(METRIC_SCALE) == set(HEADLINE_METRICS), "give every headline metric of the registry a scale"


HEALTHY_OUTPUTS = {"distinct_share": 0.97, "looping_share": 0.02, "truncated_share": 0.01, "length_ratio": 0.92,
                   "wrong_language_share": 0.0}  # fmt: skip
COLLAPSED_OUTPUTS = {"distinct_share": 0.01, "looping_share": 0.96, "truncated_share": 0.9, "length_ratio": 3.1,
                     "wrong_language_share": 0.0}  # "def _def _def ..." to the generation limit  # fmt: skip
assert set(HEALTHY_OUTPUTS) == set(COLLAPSED_OUTPUTS) == set(OUTPUT_STATS)
# Every evaluation of make_results(collapsed=COLLAPSED_CELL) is healthy but this one.
COLLAPSED_CELL = ("shared_layer", 2, 0)  # after stage 2 (javascript), on python
LOSSES = [2.5 * 0.99**i + 0.3 + 0.05 * ((i * 7919) % 13) / 13 for i in range(120)]  # every stage's, every seed's
VERDICT_WORDS = re.compile(
    r"\*\*`|\b(?:holds|does not hold|supported|is better|better on|forgets (?:less|more)|"
    r"Forgets least|Best (?:backward|average)|Most forward|Most efficient|"
    r"super-additive|sub-additive)\b"
)  # "**`" is a strategy named as the winner


def seed_matrix(name, knobs, tasks, metric, noise):
    """One seed's accuracy matrix of one metric (rows: stages 0..S; columns: tasks). Row 0 is the base
    model's, which every strategy shares: the strategy's `spread` scales the noise of the rows it trains."""
    k = METRIC_SCALE[metric]
    n = len(tasks)
    base = [BASE_ROW[j % 2] * k + noise for j in range(n)]
    noise *= knobs.get("spread", 1.0)
    diag = [knobs["diag"][j % 2] * k + noise for j in range(n)]
    if name == "joint":
        return [base, diag]
    rows = [base]
    for s in range(1, n + 1):  # after stage s: earlier tasks lost `forget`, task s at its diag, later ones zero-shot
        rows.append([diag[j] - knobs["forget"] * k if j < s - 1 else diag[j] if j == s - 1
                     else knobs["zero_shot"] * k + noise for j in range(n)])  # fmt: skip
    return rows


def train_figures(stage, i, trainable):
    """What seed i's (the i-th seed's) training of a stage reports (`StageStats.to_dict()`)."""
    return {"losses": LOSSES, "steps": 200, "examples": 1600, "target_tokens": 64_000,
            "wall_time_s": 100.0 + 4 * i + stage - 1, "tokens_per_s": 5000.0 + 100 * i,
            "peak_memory_bytes": 2_100_000_000 + 100_000_000 * i, "peak_memory_kind": "process_peak_rss",
            "trainable_params": trainable}  # fmt: skip


def eval_cost(i):
    """What seed i's evaluation of one task costs (`EvalStats.to_dict()` and the scoring time)."""
    wall = 10.0 + 0.5 * i
    return {"wall_time_s": wall, "generated_tokens": 45_000, "tokens_per_s": 45_000 / wall,
            "peak_memory_bytes": 1_100_000_000 - 100_000_000 * i, "peak_memory_kind": "process_peak_rss",
            "score_time_s": 2.0}  # fmt: skip


def synthetic_bleu_stats(bleu, examples, key):
    """Per-example BLEU statistics [hyp_len, ref_len, matches_1..4, totals_1..4] whose corpus BLEU is about
    `bleu`: example i has a hypothesis as long as its reference (10 to 39 tokens) and every n-gram
    precision `bleu` times its difficulty (0.6 to 1.4, the same in every evaluation), plus noise seeded by `key`."""
    rng = random.Random(key)
    stats = []
    for i in range(examples):
        length = 10 + i % 30
        precision = min(1.0, max(0.0, bleu * (0.6 + 0.8 * ((i * 7919) % 101) / 100) + rng.gauss(0, 0.02)))
        totals = [length - n for n in range(4)]
        stats.append([length, length, *(round(precision * t) for t in totals), *totals])
    return stats


def with_bleu_stats(evaluation, examples, key):
    """An evaluation with per-example BLEU statistics near its BLEU, and that BLEU replaced by theirs."""
    stats = synthetic_bleu_stats(evaluation["scores"]["bleu"], examples, f"{key}/{evaluation['scores']['bleu']:.9f}")
    bleu = float(corpus_bleu_from_stats([sum(column) for column in zip(*stats)]))
    return evaluation | {"scores": evaluation["scores"] | {"bleu": bleu}, "bleu_stats": stats}


def seed_records(strategy: Strategy, tasks, knobs, seed, i, noise, null_metrics, collapsed, params, examples=None):
    """Seed i's stage records, stages 0..S, as the runner writes them when it trains every stage itself.
    Stage 0 evaluates the base model (no adapter, no layer), the same for every strategy. `examples`: that
    many examples' BLEU statistics per evaluation (None: none, as in records from before them)."""
    name = strategy.name
    cells = {m: seed_matrix(name, knobs, tasks, m, noise) for m in HEADLINE_METRICS if m not in null_metrics}
    records = []
    for s in range(strategy.num_stages(tasks) + 1):
        evaluation = {}
        for j, task in enumerate(tasks):
            scores = {m: cells[m][s][j] if m in cells else None for m in METRICS}
            hit = collapsed is not None and tuple(collapsed[1:]) == (s, j) and (s == 0 or collapsed[0] == name)
            evaluation[task] = {
                "scores": scores | (COLLAPSED_OUTPUTS if hit else HEALTHY_OUTPUTS),
                "notes": {m: "not scored in this synthetic run" for m, v in scores.items() if v is None},
                "components": dataclasses.asdict(strategy.evaluation(tasks, s, task) if s else Use()),
                "cost": eval_cost(i),
            }
            if examples and scores["bleu"] is not None:
                # keyed without the stage: components a later stage leaves alone give the same outputs
                evaluation[task] = with_bleu_stats(evaluation[task], examples, f"{i}/{task}")
        if s == 0:
            records.append({"stage": 0, "seed": seed, "train": None, "eval": evaluation})
        else:
            train = train_figures(s, i, params["per_stage"][s - 1]["trainable"])
            records.append({"stage": s, "seed": seed, "shared_with": None, "train": train, "eval": evaluation})
    return records


def stage_records(strategies, tasks, seeds, knobs, noise, null_metrics=(), collapsed=None, examples=None):
    """Per strategy, its records[i][s] (seed i, stage s). Seeds get +noise, -noise, 0, +noise, ... on every
    cell. A stage the runner would copy from an earlier strategy of the run (`shared_prefix`) is that
    strategy's record with `shared_with`; the knobs must give both the same scores there."""
    records = {}
    for name in strategies:
        strategy = get_strategy(name)
        params = synthetic_params(strategy, tasks)
        records[name] = [seed_records(strategy, tasks, knobs[name], seed, i, noise * (1, -1, 0)[i % 3], null_metrics,
                                      collapsed, params, examples) for i, seed in enumerate(seeds)]  # fmt: skip
        for s in range(1, strategy.num_stages(tasks) + 1):
            earlier = [d for d in records if d != name]  # the strategies before it in the run, in order
            donor = next((d for d in earlier if shared_prefix(get_strategy(d), strategy, tasks) >= s), None)
            if donor is None:
                continue
            for i, seed_stages in enumerate(records[name]):
                copied = copy.deepcopy(records[donor][i][s])
                scores = [copied["eval"][t]["scores"] == seed_stages[s]["eval"][t]["scores"] for t in tasks]
                assert all(scores), f"the knobs of {name} and {donor} disagree on their shared stage {s}"
                seed_stages[s] = copied | {"shared_with": copied["shared_with"] or donor}
    return records


def component_count(components: Components) -> int:
    return BASE if components.base else len(components.loras) * LORA + len(components.layers) * LAYER


def synthetic_params(strategy: Strategy, tasks):
    """What `hybridcl.params.count_params` writes for CodeT5-small with the config's LoRA and layer: the
    trainable counts of PARAMS (stages after the second train what the second does), the stored ones of the
    components the registry gives the strategy (PARAMS' for two tasks)."""
    trainable, stored, what = PARAMS[strategy.name]
    components = strategy.components(tasks)
    if len(tasks) == 2:
        assert (stored, what) == (component_count(components), stored_what(components)), strategy.name
    per_stage = [
        {"stage": stage.index, "tasks": list(stage.tasks), "trainable": (t := trainable[min(s, len(trainable) - 1)]),
         "trainable_pct_of_base": 100 * t / BASE} for s, stage in enumerate(strategy.stages(tasks))
    ]  # fmt: skip
    return {"strategy": strategy.name, "tasks": list(tasks), "base": BASE,
            "lora_per_adapter": LORA if components.loras else None,
            "lora_modules": LORA_MODULES if components.loras else 0,
            "layer": LAYER if components.layers else None,
            "num_loras": len(components.loras), "num_layers": len(components.layers),
            "per_stage": per_stage, "stored": component_count(components), "stored_what": stored_what(components),
            "stored_pct_of_base": 100 * component_count(components) / BASE}  # fmt: skip


def stored_what(components: Components) -> str:
    return "whole base" if components.base else f"{len(components.loras)} LoRA + {len(components.layers)} layer(s)"


CONFIG = {
    "name": "synthetic",
    "data": {"source": "data/corpus", "languages": ["python", "javascript"], "direction": "generate", "n_train": 800,
             "n_valid": 200},
    "model": {"name": "Salesforce/codet5-small", "random_init": False},
    "lora": {"r": 16, "alpha": 32, "dropout": 0.1, "target_modules": ["q", "v"]},
    "layer": {"position": "encoder_top", "init": "identity"},
    "train": {"epochs": 2, "batch_size": 8, "lr": 0.0005, "weight_decay": 0.0, "warmup_ratio": 0.0,
              "mixed_precision": "auto", "seed": 0},
    "strategies": [],
}  # fmt: skip
DATA = {
    "counts": {"train_read": 48119, "train_examined": 812, "train": 800, "valid_read": 6015, "valid_examined": 200,
               "valid": 200},
    "skips": {"duplicate": 12, "too_long": 3},
    "split_skips": {"train": {"duplicate": 10, "too_long": 3}, "valid": {"duplicate": 2}},
}  # fmt: skip


def make_results(strategies=("task_specific", "shared_layer", "lora_only", "layer_only"), seeds=(0, 1),
                 tasks=("python", "javascript"), knobs=None, noise=0.001, null_metrics=(), collapsed=None,
                 examples=None):  # fmt: skip
    """A results dict of the current schema version, built by `hybridcl.results` from `stage_records`. Seeds
    get +noise, -noise, 0, +noise, ... on every cell (the mean stays the knobs' value; a knob `spread` scales
    a strategy's noise). `null_metrics`: headline metrics with no score anywhere. `collapsed`: (strategy,
    stage, task column) whose outputs collapsed; every other evaluation's outputs are healthy. `examples`:
    every evaluation gets that many examples' BLEU statistics (`synthetic_bleu_stats`), its BLEU becomes
    theirs (near the knobs'), and the results get paired-bootstrap intervals; None: no statistics."""
    knobs = copy.deepcopy(knobs or KNOBS)
    tasks = list(tasks)
    config = copy.deepcopy(CONFIG)
    config["data"]["languages"], config["strategies"] = tasks, list(strategies)
    records = stage_records(strategies, tasks, seeds, knobs, noise, null_metrics, collapsed, examples)
    entries = {}
    for name in strategies:
        strategy = get_strategy(name)
        entries[name] = strategy_results(strategy, tasks, records[name], synthetic_params(strategy, tasks))
    return results_tree(
        config,
        created="2026-11-24T19:30:00+00:00",
        versions={"hybridcl": "0.1.0", "python": "3.11.7", "torch": "2.13.0"},
        device={"type": "cpu", "name": "test cpu", "processes": 1},
        seeds=list(seeds),
        data={t: copy.deepcopy(DATA) for t in tasks},
        strategies=entries,
        finished=True,
        comparisons=strategy_comparisons(tasks, records),
    )


def section(text, heading):
    """The text of the `## heading...` section, up to the next `## `."""
    start = text.index("\n## " + heading)
    end = text.find("\n## ", start + 4)
    return text[start : end if end != -1 else len(text)]


def line_with(text, *needles):
    hits = [ln for ln in text.splitlines() if all(n in ln for n in needles)]
    assert hits, f"no line with {needles!r}"
    return hits[0]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def verdicts(text):
    """Verdict words in the research-question sections, and strategies named in a leader column."""
    found = []
    for heading in ("RQ1", "RQ2", "RQ3", "RQ4"):
        body = section(text, heading)
        found += VERDICT_WORDS.findall(re.sub(r"(?:higher|lower) is better", "", body))
        found += [cell for cell in leader_cells(body) if "`" in cell]
    return found


def leader_cells(body):
    """The cells of every table column whose header says 'leader'."""
    cells, columns = [], None
    for line in body.splitlines():
        if not line.startswith("|"):
            columns = None
            continue
        row = [c.strip() for c in line.strip("|").split("|")]
        if columns is None:
            columns = [i for i, c in enumerate(row) if "leader" in c]
        elif not set(line) <= set("|-: "):  # not the separator row
            cells += [row[i] for i in columns]
    return cells


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    results = make_results()
    paths = write_report(results, run)
    return run, paths, (run / "analysis.md").read_text()


@pytest.fixture(scope="module")
def three_seed_report(tmp_path_factory):
    """Three seeds, spread 0.001 per cell: every difference of the knobs is resolved."""
    run = tmp_path_factory.mktemp("three")
    write_report(make_results(seeds=(0, 1, 2)), run, plots=False)
    return (run / "analysis.md").read_text()


def test_files_written(full_report):
    run, paths, text = full_report
    assert paths[0] == run / "analysis.md"
    names = {p.name for p in paths[1:]}
    expected = {f"accuracy_matrix_{m}.png" for m in HEADLINE_METRICS} | {
        "forgetting_bleu.png",
        "score_vs_params_bleu.png",
        "loss_curves.png",
    }
    assert names == expected
    for p in paths[1:]:
        assert p.parent == run / "plots"
        w, h = png_size(p)
        assert w >= 500 and h >= 300, (p.name, w, h)
        assert p.stat().st_size > 15_000, p.name  # a real figure, not an empty canvas
        assert f"](plots/{p.name})" in text  # embedded in the analysis
    assert not list(run.rglob("*.tmp")), "temporary files left behind"


def test_sections_and_setup(full_report):
    _, _, text = full_report
    for heading in ("## Setup", "## RQ1: Component interaction", "## RQ2: Shared vs specific",
                    "## RQ3: Capacity allocation", "## RQ4: Continual learning", "## Per strategy"):  # fmt: skip
        assert heading in text
    setup = section(text, "Setup")
    assert "Salesforce/codet5-small" in setup and "python → javascript" in setup
    assert "r=16, alpha=32, dropout=0.1" in setup
    assert "3,146,752 parameters (4.94% of base + layer" in setup  # layer size from layer_only's params
    assert "589,824 parameters per adapter" in setup
    assert "duplicate 12, too_long 3" in setup
    assert "0, 1 (2 seeds)" in setup
    assert "None" not in text and "nan" not in text.lower().replace("finetune", "")


def test_matrix_and_cl_tables_hold_the_numbers(full_report):
    _, _, text = full_report
    per = section(text, "Per strategy")
    ts = per[per.index("### `task_specific`") : per.index("### `shared_layer`")]
    # BLEU matrix of task_specific: row 1 = [0.30, 0.06] +- 0.001 over 2 seeds -> std 0.0014
    assert "| 1: python | 0.3000 ± 0.0014 | 0.0600 ± 0.0014 |" in ts
    # shared_layer: F on BLEU is 0.04 with no spread between seeds (the drop is the same in both).
    sl = per[per.index("### `shared_layer`") :]
    row = line_with(sl, "| BLEU |")
    assert "0.0400 ± 0.0000" in row
    # Cost, summed from the records: training 100 + 101 s (seed 0), 104 + 105 s (seed 1); evaluation 10 s
    # (10.5 s) per task, 2 tasks, stages 0..2. shared_layer's stage 1 is task_specific's, copied.
    assert "Total: training 205.0 s ± 5.7 s, evaluation 61.5 s ± 2.1 s." in ts
    assert "| 2 | 103.0 s ± 2.8 s | 5,050 ± 71 | 2.00 GiB ± 67.4 MiB (RSS) | 200 | 1,600 | 20.5 s ± 0.7 s |" in ts
    assert "| 1 (shared with `task_specific`) | 102.0 s ± 2.8 s |" in sl


def test_rq1_winner_and_ci(three_seed_report):
    rq1 = section(three_seed_report, "RQ1")
    # task_specific A = (0.30 + 0.28) / 2 = 0.29; lora_only A = (0.24 + 0.22) / 2 = 0.23; difference 0.06
    line = line_with(rq1, "`lora_only`", "** is better")
    # std 0.001 over 3 seeds: half-width 4.303 * 0.001 / sqrt(3) = 0.0025 << 0.06 / 2
    assert "**`task_specific`** is better, 0.2900 [0.2875, 0.2925] vs 0.2300 [0.2275, 0.2325]" in line
    # every seed has the same difference: the interval of the per-seed differences has no width
    assert ("(difference (`task_specific` − `lora_only`) +0.0600); resolved: the across-seed 95% CI [0.0600, 0.0600] "
            "(3 seeds) excludes 0; relative difference 26.1% of the lower value.") in line  # fmt: skip
    assert "hypothesis that the combined approach outperforms either method alone holds on BLEU" in rq1
    # interaction: gains over base (A_base = 0.045): lora 0.185, layer 0.165, both 0.245 -> contrast -0.105
    assert "Interaction contrast" in rq1 and "-0.1050" in rq1 and "sub-additive" in rq1


def test_rq1_flips_within_the_seeds_spread(tmp_path):
    knobs = copy.deepcopy(KNOBS)
    knobs["lora_only"].update(diag=[0.31, 0.29], spread=3)  # A = 0.30 > task_specific's 0.29, seeds +-0.045
    # Per-seed differences -0.01 + (1 - 3) * (0.015, -0.015, 0) = (-0.04, 0.02, -0.01): std 0.03, half-width
    # 4.303 * 0.03 / sqrt(3) = 0.0745 > |-0.01|: no difference found. layer_only: +0.08 in every seed.
    write_report(make_results(knobs=knobs, seeds=(0, 1, 2), noise=0.015), tmp_path, plots=False)
    rq1 = section((tmp_path / "analysis.md").read_text(), "RQ1")
    line = line_with(rq1, "- **A**", "`lora_only` 0.3000")
    assert "`task_specific` 0.2900 [0.2527, 0.3273] vs `lora_only` 0.3000 [0.1882, 0.4118]" in line
    assert ("difference (`task_specific` − `lora_only`) -0.0100; no difference found: |-0.0100| is below half the "
            "width of the across-seed 95% CI [-0.0845, 0.0645] (3 seeds)") in line  # fmt: skip
    assert "is better" not in line.replace("higher is better", "")
    assert "**`task_specific`** is better" in line_with(rq1, "- **A**", "`layer_only`")
    # One difference resolved for the combination, none found for the other: the hypothesis is untested, not refuted.
    assert "outperforms either method alone is untested on BLEU (vs `lora_only`: no difference found:" in rq1
    # ... and the leader column names no one: lora_only is ahead on the mean by less than the half-width.
    assert line_with(rq1, "| BLEU |").endswith("| no difference found (across-seed [-0.0645, 0.0845]) |")


def test_forgetting_winner_follows_the_numbers(tmp_path):
    knobs = copy.deepcopy(KNOBS)
    for name in ("lora_only", "layer_only"):
        knobs[name]["forget"] = 0.09
    knobs["task_specific"]["forget"] = 0.05
    knobs["shared_layer"]["forget"] = 0.01  # shared_layer forgets less
    write_report(make_results(knobs=knobs, seeds=(0, 1, 2)), tmp_path / "a", plots=False)
    text = (tmp_path / "a" / "analysis.md").read_text()
    assert "**`shared_layer`** is better" in line_with(section(text, "RQ2"), "**F**")
    assert "**`shared_layer`**" in line_with(section(text, "RQ4"), "Forgets least")
    forgets_least = line_with(section(text, "RQ4"), "Forgets least")
    assert "next `task_specific` (0.0500 [0.0500, 0.0500]), difference (`shared_layer` − `task_specific`) -0.0400" in (
        forgets_least
    )
    # BWT = -F, so the best BWT is shared_layer's too.
    assert "**`shared_layer`**" in line_with(section(text, "RQ4"), "Best backward transfer")
    # The design check notices that task_specific forgets although it should not.
    assert "Check: `task_specific` should not forget by design" in text

    knobs["task_specific"]["forget"], knobs["shared_layer"]["forget"] = 0.01, 0.05  # flipped
    write_report(make_results(knobs=knobs, seeds=(0, 1, 2)), tmp_path / "b", plots=False)
    text = (tmp_path / "b" / "analysis.md").read_text()
    assert "**`task_specific`** is better" in line_with(section(text, "RQ2"), "**F**")
    assert "**`task_specific`**" in line_with(section(text, "RQ4"), "Forgets least")
    assert "**`shared_layer`**" not in line_with(section(text, "RQ4"), "Forgets least")


def test_rq2_and_rq4_defaults(three_seed_report):
    rq2 = section(three_seed_report, "RQ2")
    # task_specific A 0.29 vs shared_layer A (0.26 + 0.27) / 2 = 0.265; F 0 vs 0.04; FWT equal (same stage 1)
    a, f = line_with(rq2, "**A**"), line_with(rq2, "**F**")
    assert "**`task_specific`** is better, 0.2900 [0.2875, 0.2925] vs 0.2650 [0.2625, 0.2675]" in a
    assert "**`task_specific`** is better, 0.0000 [0.0000, 0.0000] vs 0.0400 [0.0400, 0.0400]" in f
    assert "are equal (0.0200)" in line_with(rq2, "**FWT**")  # 0.06 - 0.04 for both
    assert "add `shared_layer_frozen`" in rq2
    assert ("Tally on BLEU over these 4 figures: resolved: `task_specific` better on 3, `shared_layer` better on 0; "
            "untested on 0, no difference found on 0, equal on 1.") in rq2  # fmt: skip
    # diagonal: 0.29 vs (0.30 + 0.27) / 2 = 0.285, both +-0.0025: resolved
    assert "The hypothesis is supported." in line_with(rq2, "individual task performance")
    # BWT: task_specific ahead (resolved); FWT equal (untested): shared transfer is not better on either
    assert "The hypothesis is not supported on BWT; untested on FWT." in line_with(rq2, "cross-task transfer")
    rq4 = section(three_seed_report, "RQ4")
    assert "`task_specific`: F = BWT = 0, as designed" in rq4
    assert "add `full_finetune`" in rq4 and "add `joint`" in rq4
    # Three strategies tie at F = 0 (task_specific, lora_only, layer_only).
    assert "tie between **`task_specific`** and **`lora_only`** and **`layer_only`**" in line_with(rq4, "Forgets least")


def test_rq3_numbers(three_seed_report):
    rq3 = section(three_seed_report, "RQ3")
    # efficiency: lora_only 0.23 / 0.589824 M = 0.3899 per M, the highest
    assert "Most efficient (highest A per million trainable parameters, BLEU): **`lora_only`**" in rq3
    assert "| `lora_only` | 589,824 | 0.98% |" in rq3
    # adding a layer to LoRA adds 3,146,752 trainable per stage and changes A by +0.06
    assert "adds 3,146,752 trainable parameters per stage" in rq3 and "+0.0600" in rq3
    # sharing one layer stores 3,146,752 fewer parameters
    assert "stores 3,146,752 fewer parameters" in rq3


def test_one_strategy_one_seed(tmp_path):
    results = make_results(strategies=("task_specific",), seeds=(0,))
    paths = write_report(results, tmp_path)
    text = (tmp_path / "analysis.md").read_text()
    assert "add `lora_only`, `layer_only`" in section(text, "RQ1")
    assert "add `shared_layer`" in section(text, "RQ2")
    assert "±" not in section(text, "Per strategy")  # one seed: no spread to show
    assert "1 seed" in text
    assert {p.name for p in paths[1:]} >= {"accuracy_matrix_bleu.png", "forgetting_bleu.png", "loss_curves.png"}
    for p in paths[1:]:
        png_size(p)


def test_nulls_render_as_na(tmp_path):
    # A plot from an earlier report of the same run (CodeBLEU then had numbers) must not linger.
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "accuracy_matrix_codebleu.png").write_bytes(b"stale")
    (tmp_path / "plots" / "my_notes.png").write_bytes(b"not ours")
    results = make_results(null_metrics=("codebleu",))
    results["strategies"]["shared_layer"]["cl"]["bleu"]["fwt"] = None
    paths = write_report(results, tmp_path)
    text = (tmp_path / "analysis.md").read_text()
    assert "None" not in text
    glance = section(text, "Results at a glance")
    a_table = glance[glance.index("A (average performance") :]
    header = line_with(a_table, "| strategy |")
    row = line_with(a_table, "| `task_specific` |")
    col = header.split("|").index(" CodeBLEU ")
    assert row.split("|")[col].strip() == "n/a"
    assert "n/a for `shared_layer`, so no comparison" in line_with(section(text, "RQ2"), "**FWT**")
    assert "No accuracy-matrix plot for CodeBLEU" in text
    assert "accuracy_matrix_codebleu.png" not in {p.name for p in paths}
    assert not (tmp_path / "plots" / "accuracy_matrix_codebleu.png").exists()
    assert (tmp_path / "plots" / "my_notes.png").exists()
    assert "*CodeBLEU*: n/a in every cell" in text


def test_unfinished_run(tmp_path):
    # shared_layer's stage 2 has finished in no seed yet (no stage.json): the runner's tree of that moment.
    results = make_results(strategies=("task_specific", "shared_layer"))
    records = stage_records(("task_specific", "shared_layer"), results["tasks"], results["seeds"], KNOBS, 0.001)
    for seed in records["shared_layer"]:
        seed[2] = None
    sl = strategy_results(get_strategy("shared_layer"), results["tasks"], records["shared_layer"],
                          results["strategies"]["shared_layer"]["params"])  # fmt: skip
    results["strategies"]["shared_layer"] = sl
    results["finished"] = False
    results["config"]["strategies"].append("lora_only")
    assert sl["matrices"]["bleu"][2] == [None, None] and sl["cl"]["bleu"]["average"] is None
    assert sl["cl"]["bleu"]["fwt"] is not None and sl["efficiency"]["bleu"] is None and list(sl["loss_curves"]) == ["1"]
    write_report(results, tmp_path)  # with plots: a half-empty matrix and a missing loss curve must draw
    status = section((tmp_path / "analysis.md").read_text(), "Status")
    assert "**unfinished**" in status
    assert "`shared_layer`: stage(s) missing: 2: javascript (of 2)" in status
    assert "`lora_only`: not started" in status
    assert "`task_specific`" not in status


def test_single_task(tmp_path):
    paths = write_report(make_results(tasks=("python",)), tmp_path)
    text = (tmp_path / "analysis.md").read_text()
    assert "With a single task there is no forgetting or transfer" in text
    assert "forgetting_bleu.png" not in {p.name for p in paths}
    assert "No forgetting plot" in text


def test_all_seven_strategies(tmp_path):
    strategies = (
        "task_specific",
        "shared_layer",
        "shared_layer_frozen",
        "lora_only",
        "layer_only",
        "full_finetune",
        "joint",
    )
    paths = write_report(make_results(strategies=strategies, seeds=(0, 1, 2)), tmp_path)
    text = (tmp_path / "analysis.md").read_text()
    rq4 = section(text, "RQ4")
    # full_finetune F = 0.15; task_specific F = 0 -> forgets 0.15 less
    assert "`task_specific` forgets 0.1500 less than the `full_finetune` baseline" in rq4
    # joint A = (0.31 + 0.29) / 2 = 0.30; sequential A: task_specific (0.30 + 0.28) / 2 = 0.29 is the highest
    # (full_finetune: (0.35 - 0.15 + 0.33) / 2 = 0.265) -> gap 0.30 - 0.29 = +0.01
    assert "the sequential strategy with the highest mean A, `task_specific`" in rq4
    assert "gap (joint − it) +0.0100; resolved" in rq4
    assert "`shared_layer_frozen` (the ablation" in section(text, "RQ2")
    assert "| `joint` |" in section(text, "Results at a glance")
    assert len(paths) == 1 + len(HEADLINE_METRICS) + 3


def test_the_design_check_covers_each_strategy_that_freezes_finished_tasks(tmp_path):
    """RQ4 expects F = BWT = 0 of the strategies whose registry entry never trains what evaluates a finished
    task: `shared_layer_frozen` too (its layer trains at stage 1 only), not `shared_layer` or `full_finetune`."""
    knobs = copy.deepcopy(KNOBS)
    knobs["shared_layer_frozen"]["forget"] = 0.0
    write_report(make_results(strategies=tuple(KNOBS), knobs=knobs), tmp_path / "a", plots=False)
    rq4 = section((tmp_path / "a" / "analysis.md").read_text(), "RQ4")
    for name in ("task_specific", "shared_layer_frozen", "lora_only", "layer_only"):
        assert f"- `{name}`: F = BWT = 0, as designed" in rq4
    for name in ("shared_layer", "full_finetune", "joint"):
        assert f"- `{name}`: F = BWT" not in rq4 and f"Check: `{name}`" not in rq4

    knobs["shared_layer_frozen"]["forget"] = 0.01
    write_report(make_results(strategies=tuple(KNOBS), knobs=knobs), tmp_path / "b", plots=False)
    rq4 = section((tmp_path / "b" / "analysis.md").read_text(), "RQ4")
    assert "Check: `shared_layer_frozen` should not forget by design" in rq4


def test_load_results(tmp_path):
    results = make_results(strategies=("task_specific",), seeds=(0,))
    (tmp_path / RESULTS_FILE).write_text(json.dumps(results))
    assert load_results(tmp_path) == json.loads(json.dumps(results))
    assert load_results(tmp_path / RESULTS_FILE)["name"] == "synthetic"
    with pytest.raises(ResultsError, match="no results file"):
        load_results(tmp_path / "nowhere")
    results["schema_version"] = SCHEMA_VERSION + 1
    (tmp_path / RESULTS_FILE).write_text(json.dumps(results))
    with pytest.raises(ResultsError, match="schema_version"):
        load_results(tmp_path)
    (tmp_path / RESULTS_FILE).write_text('{"half": ')
    with pytest.raises(ResultsError, match="not a JSON results file"):
        load_results(tmp_path)


def test_rewrite_is_idempotent_and_json_roundtrip(tmp_path):
    # The report reads what the runner writes: JSON, so round-trip the dict first (tuples -> lists, etc.).
    results = json.loads(json.dumps(make_results(strategies=("task_specific", "shared_layer"))))
    assert write_report(results, tmp_path, plots=False) == [tmp_path / "analysis.md"]
    assert not (tmp_path / "plots").exists()
    first = re.sub(r"on \S+ from", "", (tmp_path / "analysis.md").read_text())
    write_report(results, tmp_path, plots=False)
    second = re.sub(r"on \S+ from", "", (tmp_path / "analysis.md").read_text())
    assert first == second


def test_three_tasks_and_empty_results(tmp_path):
    knobs = copy.deepcopy(KNOBS)
    knobs["shared_layer"]["forget"] = 0.02
    results = make_results(
        strategies=("task_specific", "shared_layer"), tasks=("javascript", "go", "python"), knobs=knobs
    )
    paths = write_report(results, tmp_path / "three")
    text = (tmp_path / "three" / "analysis.md").read_text()
    assert "javascript → go → python" in text
    # shared_layer, N = 3: F_1 = F_2 = 0.02 (each earlier task drops 0.02 once), so F = 0.02; BWT = -0.02.
    # Two seeds: the intervals (zero width) separate, but two seeds carry no verdict.
    line = line_with(section(text, "RQ2"), "**F**")
    assert "`task_specific` 0.0000 [0.0000, 0.0000] vs `shared_layer` 0.0200 [0.0200, 0.0200]" in line
    assert "difference (`task_specific` − `shared_layer`) -0.0200; untested: 2 seeds, no paired bootstrap" in line
    assert "| 3: python |" in text
    assert len(paths) == 1 + len(HEADLINE_METRICS) + 3
    # Nothing trained yet: the report still renders and says so.
    empty = {"schema_version": SCHEMA_VERSION, "name": "empty", "finished": False, "tasks": ["python"], "metrics": ["bleu"],
             "seeds": [0], "strategies": {}, "config": {"strategies": ["task_specific"]}}  # fmt: skip
    write_report(empty, tmp_path / "empty")
    text = (tmp_path / "empty" / "analysis.md").read_text()
    assert "No strategy has results yet" in text and "`task_specific`: not started" in text


def test_number_formatting():
    from hybridcl.report.text import mean_std as _ms
    from hybridcl.report.text import number as _f
    from hybridcl.report.text import signed as _signed

    assert _f(None) == "n/a" and _f(float("nan")) == "n/a"
    assert _f(0.29) == "0.2900"
    assert _f(0.000701) == "0.000701"  # a tiny model's BLEU keeps 3 significant digits instead of 0.0007
    assert _f(0.0099999) == "0.0100"  # rounds to 4 decimals first: no switch of format at the boundary
    assert _f(4e-18) == "0.0000"  # floating-point noise
    assert _signed(-0.105) == "-0.1050" and _signed(0.00012) == "+0.00012"
    assert _ms({"mean": 0.3, "std": 0.0014142, "n": 2, "ci95": [0.28, 0.32]}) == "0.3000 ± 0.0014"
    assert _ms({"mean": 0.3, "std": 0.0, "n": 1, "ci95": [0.3, 0.3]}) == "0.3000"
    assert _ms(None) == "n/a"


def test_one_seed_without_example_statistics_is_untested(tmp_path):
    write_report(make_results(strategies=("task_specific", "shared_layer"), seeds=(0,)), tmp_path, plots=False)
    line = line_with(section((tmp_path / "analysis.md").read_text(), "RQ2"), "**A**")
    # Both means, the difference and why it is untested; no winner (this line once said "is better"), and no
    # relative figure: there is no interval to stand beside it (it once said "9.4% of the lower value").
    assert ("`task_specific` 0.2910 vs `shared_layer` 0.2660, difference (`task_specific` − `shared_layer`) +0.0250; "
            "untested: 1 seed, no paired bootstrap.") in line  # fmt: skip
    assert "**`" not in line and "CI" not in line and "of the lower value" not in line


def test_one_seed_with_example_statistics_gives_bootstrap_verdicts(tmp_path):
    results = make_results(seeds=(0,), examples=200)
    entry = results["comparisons"]["task_specific vs lora_only"]["bleu"]["average"]
    low, high = entry["bootstrap_ci95"]
    assert 0 < low < entry["difference"] < high and entry["seeds_ci95"] is None
    write_report(results, tmp_path, plots=False)
    rq1 = section((tmp_path / "analysis.md").read_text(), "RQ1")
    line = line_with(rq1, "- **A**", "`lora_only`")
    assert "**`task_specific`** is better" in line
    assert (f"resolved: the paired-bootstrap 95% CI [{number(low)}, {number(high)}] (200 examples per task, 1,000 "
            "resamples) excludes 0; relative difference ") in line  # fmt: skip
    assert "outperforms either method alone holds on BLEU" in rq1
    assert "`task_specific`" in leader_cells(rq1)
    # The interaction contrast is not a comparison of two strategies: it stays with the seeds' rule.
    assert "its sign is untested: 1 seed" in rq1


def test_a_difference_within_the_bootstrap_interval_is_never_ranked(tmp_path):
    knobs = copy.deepcopy(KNOBS)
    knobs["lora_only"]["zero_shot"] = 0.0604  # FWT 0.0204 against task_specific's and shared_layer's 0.0200
    results = make_results(seeds=(0,), examples=200, knobs=knobs)
    entry = results["comparisons"]["task_specific vs lora_only"]["bleu"]["fwt"]
    low, high = entry["bootstrap_ci95"]
    assert abs(entry["difference"]) < (high - low) / 2  # what the example noise of the synthetic statistics gives
    write_report(results, tmp_path, plots=False)
    rq4 = section((tmp_path / "analysis.md").read_text(), "RQ4")
    line = line_with(rq4, "- FWT (BLEU")
    assert "no difference found: |" in line and "paired-bootstrap 95% CI" in line
    assert "Most forward transfer" not in rq4 and "**`" not in line and "highest mean" not in line
    fwt_leader = leader_cells(rq4)[2::4]  # the FWT column of the leader table, one cell per metric
    assert fwt_leader[0].startswith("no difference found (paired-bootstrap [")


# --- verdicts only where the numbers carry them ----------------------------------------------


ALL_STRATEGIES = ("task_specific", "shared_layer", "shared_layer_frozen", "lora_only", "layer_only", "full_finetune",
                  "joint")  # fmt: skip


@pytest.mark.parametrize("seeds", [(0,), (0, 1)])
def test_fewer_than_three_seeds_give_no_verdict(tmp_path, seeds):
    # Two seeds with these knobs have zero-width F intervals that separate: still no verdict.
    write_report(make_results(strategies=ALL_STRATEGIES, seeds=seeds), tmp_path, plots=False)
    text = (tmp_path / "analysis.md").read_text()
    assert verdicts(text) == []
    assert f"untested: {len(seeds)} seed" in section(text, "RQ1")
    assert "outperforms either method alone is untested on BLEU" in section(text, "RQ1")
    assert "its sign is untested" in section(text, "RQ1")  # the interaction contrast


def test_three_seeds_whose_differences_vary_widely_give_no_verdict(tmp_path):
    knobs = copy.deepcopy(KNOBS)
    # F, BWT and FWT equal everywhere. Each strategy's seeds move by its spread times (0.03, -0.03, 0): the
    # per-seed differences of any two vary by 2 x 0.03 or more, a half-width of at least 4.303 * 0.06 / sqrt(3)
    # = 0.149, more than the 0.05 x 2.5 between full_finetune and task_specific, the top two on A (pass rate).
    # lora_only's A per million trainable parameters is 0.31 ahead of the next, but moves by 6 x 0.03 / 0.59.
    for name, spread in zip(("task_specific", "lora_only", "layer_only", "full_finetune", "joint"), (4, -6, -4, 2, 0)):
        knobs[name].update(forget=0.0, zero_shot=0.06, spread=spread)
    results = make_results(strategies=("task_specific", "lora_only", "layer_only", "full_finetune", "joint"),
                           seeds=(0, 1, 2), knobs=knobs, noise=0.03)  # fmt: skip
    write_report(results, tmp_path, plots=False)
    text = (tmp_path / "analysis.md").read_text()
    assert verdicts(text) == []
    assert "no difference found" in line_with(section(text, "RQ1"), "- **A**", "`lora_only`")
    assert "its sign is untested: its 95% CI includes 0" in section(text, "RQ1")


def test_three_seeds_with_separate_intervals_give_verdicts(three_seed_report):
    found = verdicts(three_seed_report)
    for word in ("holds", "supported", "is better", "Forgets least", "**`"):
        assert word in found, word
    assert "`task_specific`" in leader_cells(section(three_seed_report, "RQ1"))


def test_the_verdict_rules():
    from hybridcl.report.verdicts import MIN_SEEDS_FOR_VERDICT, compare
    from hybridcl.report.view import Interval, Summary

    def outcome(a_values, b_values, bootstrap=None):
        c = compare("a", Summary.of(summarize(a_values)), "b", Summary.of(summarize(b_values)), True, bootstrap)
        return "resolved" if c.decided else "no difference" if c.no_difference else "untested"

    def paired(low, high):
        return Interval(low, high, "paired-bootstrap", "200 examples per task, 1,000 resamples")

    assert MIN_SEEDS_FOR_VERDICT == 3
    # Across seeds: the per-seed differences (0.20, 0.20, 0.20) resolve; (0.05, -0.05, 0.09) do not.
    assert outcome([0.30, 0.31, 0.32], [0.10, 0.11, 0.12]) == "resolved"
    assert outcome([0.20, 0.10, 0.30], [0.15, 0.15, 0.21]) == "no difference"
    # Without the paired bootstrap, fewer than three seeds carry no interval at all: untested, whatever the gap.
    assert outcome([0.30, 0.31], [0.10, 0.11]) == "untested" and outcome([0.30], [0.10]) == "untested"
    # One seed with a paired-bootstrap interval: it excludes 0, or the difference is within its half-width,
    # or neither (an interval that includes 0 but lies mostly on one side).
    assert outcome([0.30], [0.29], paired(0.004, 0.016)) == "resolved"
    assert outcome([0.30], [0.29], paired(-0.02, 0.03)) == "no difference"  # 0.01 < 0.025
    assert outcome([0.30], [0.28], paired(-0.001, 0.03)) == "untested"  # 0.02 > 0.0155, but 0 is inside
    assert outcome([0.30], [0.29], paired(-0.016, -0.004)) == "untested"  # excludes 0 on the other side
    # Both intervals: either one that excludes 0 resolves, and the status says which.
    c = compare("a", Summary.of(summarize([0.30, 0.20, 0.40])), "b", Summary.of(summarize([0.28, 0.30, 0.26])), True,
                paired(0.01, 0.06))  # fmt: skip
    assert c.decided and [c.resolves(i) for i in c.intervals] == [True, False]
    assert c.status.startswith("resolved: the paired-bootstrap 95% CI [0.0100, 0.0600] (200 examples per task, 1,000 "
                               "resamples) excludes 0; the across-seed 95% CI [")  # fmt: skip
    assert c.status.endswith("(3 seeds) includes 0")
    # No difference needs the difference within every interval's half-width: here within the seeds' (per-seed
    # differences 0.05, -0.01, 0.02: half-width 0.0745), not within the bootstrap's (0.0155 < 0.02).
    assert outcome([0.35, 0.29, 0.32], [0.30, 0.30, 0.30], paired(-0.001, 0.03)) == "untested"
    assert outcome([0.2] * 3, [0.2] * 3) == "untested"  # a tie with zero-width intervals: equal, not ranked


# --- relative figures below the score floor --------------------------------------------------


def test_forgetting_rate_and_percentages_below_the_floor_are_na_with_the_reason(tmp_path):
    knobs = copy.deepcopy(KNOBS)
    # A tiny model: BLEU of 0.0004 right after its own stage (scaled by 0.2 for exact match, etc.).
    knobs["lora_only"].update(diag=[0.0004, 0.0003], forget=-0.002, zero_shot=0.0001)
    results = make_results(seeds=(0,), knobs=knobs, noise=0.0)
    rate = results["strategies"]["lora_only"]["cl"]["bleu"]
    assert rate["forgetting_rate"] is None
    assert rate["notes"]["forgetting_rate"] == "own-stage score 0.0004 is below the floor 0.01"
    assert results["strategies"]["task_specific"]["cl"]["bleu"]["forgetting_rate"]["mean"] == 0.0  # above the floor
    write_report(results, tmp_path, plots=False)
    text = (tmp_path / "analysis.md").read_text()
    glance = section(text, "Results at a glance")
    cells = line_with(glance, "| `lora_only` |").split("|")
    assert cells[4].strip() == "n/a (own-stage score 0.0004 is below the floor 0.01)"  # forgetting rate column
    assert cells[5].strip() == "0.002"  # BWT is a difference, not a ratio: reported
    # One seed and no example statistics: no interval, so no relative figure either.
    assert "of the lower value" not in section(text, "RQ1")
    # Three seeds: A of lora_only (0.0024 + 0.0003) / 2 = 0.00135 is the lower value of the comparison: no
    # percentage of it, but one of layer_only's, beside the difference and its interval.
    write_report(make_results(seeds=(0, 1, 2), knobs=knobs, noise=0.0), tmp_path / "three", plots=False)
    rq1 = section((tmp_path / "three" / "analysis.md").read_text(), "RQ1")
    line = line_with(rq1, "- **A**", "`lora_only`")
    assert "relative difference n/a (the lower value" in line and "is below the floor 0.01)" in line
    assert "% of the lower value" not in line
    assert "excludes 0; relative difference 38.1% of the lower value" in line_with(rq1, "- **A**", "`layer_only`")


# --- collapsed outputs -----------------------------------------------------------------------


def test_a_flagged_evaluation_is_flagged_everywhere_it_is_read(tmp_path):
    write_report(make_results(seeds=(0, 1, 2), collapsed=COLLAPSED_CELL), tmp_path, plots=False)
    text = (tmp_path / "analysis.md").read_text()
    # At the top, before any figure: which evaluation, its flags, its statistics.
    assert text.index("## Output checks") < text.index("## Results at a glance")
    warning = section(text, "Output checks")
    assert "**Warning**: 1 evaluation(s) are flagged" in warning
    assert (
        "| `shared_layer` | 2: javascript | python | **collapsed** (3 of 3 seeds), **truncated** (3 of 3 seeds) ⚠ | "
        "0.0100 ± 0.0000 | 0.9600 ± 0.0000 | 0.9000 ± 0.0000 | 3.1000 ± 0.0000 | 0.0000 ± 0.0000 |"
    ) in warning
    # Per strategy: the outputs table flags the cell, the accuracy matrices mark it.
    sl = section(text, "Per strategy")[section(text, "Per strategy").index("### `shared_layer`") :]
    assert (
        "| 2: javascript | python | 0.0100 ± 0.0000 | 0.9600 ± 0.0000 | 0.9000 ± 0.0000 | 3.1000 ± 0.0000 | "
        "0.0000 ± 0.0000 | 0.6500 ± 0.0010 | **collapsed** (3 of 3 seeds), **truncated** (3 of 3 seeds) ⚠ |"
    ) in sl
    assert "| 2: javascript | javascript | 0.9700 ± 0.0000 | 0.0200 ± 0.0000 | 0.0100 ± 0.0000 |" in sl
    assert line_with(sl, "| 2: javascript | javascript | 0.9700").endswith("| no |")
    assert "| 2: javascript | 0.2600 ± 0.0010 ⚠ | 0.2700 ± 0.0010 |" in sl
    # Figures that read R[2][python] are marked; FWT (rows 0 and 1) is not; other strategies are not.
    row = line_with(section(text, "Results at a glance"), "| `shared_layer` |").split("|")
    assert all("⚠" in row[i] for i in (2, 3, 4, 5)) and "⚠" not in row[6]
    assert "⚠" not in line_with(section(text, "Results at a glance"), "| `task_specific` |")
    # Sentences that rest on it carry the warning, with its flags; those that do not, do not.
    rq2 = section(text, "RQ2")
    warning = (
        "⚠ Rests on flagged outputs of `shared_layer` (after stage 2: javascript, on python: collapsed, truncated)"
    )
    assert warning in line_with(rq2, "- **A**")
    assert "⚠" not in line_with(rq2, "- **FWT**")
    assert "⚠" not in line_with(section(text, "RQ1"), "- **A**", "`lora_only`")


def test_each_flag_on_its_own_and_outputs_in_another_language(tmp_path):
    results = make_results(strategies=("task_specific",), seeds=(0,))
    outputs = results["strategies"]["task_specific"]["outputs"]
    for stat, value in (("truncated_share", 0.3), ("wrong_language_share", 0.99)):
        outputs[stat][1][1] = summarize([value])  # after stage 1, on javascript: cut off, and Python
    write_report(results, tmp_path, plots=False)
    text = (tmp_path / "analysis.md").read_text()
    checks = section(text, "Output checks")
    assert "| `task_specific` | 1: python | javascript | **truncated** ⚠ |" in checks
    assert "up to 0.9900 of an evaluation's outputs (`task_specific`, after stage 1: python, on javascript)" in checks
    assert "collapsed = distinct share < 0.5 or looping share > 0.25; truncated = truncated share > 0.1" in checks


def test_healthy_outputs_and_results_without_output_statistics(tmp_path):
    results = make_results(strategies=("task_specific", "shared_layer"))
    write_report(results, tmp_path / "healthy", plots=False)
    text = (tmp_path / "healthy" / "analysis.md").read_text()
    assert "No evaluation is flagged" in section(text, "Output checks")
    assert "⚠" not in text.replace("⚠ = flagged", "").replace("(⚠ marks", "")
    # The statistics are not metrics: no matrix, no CL figure, not the primary metric.
    assert "Primary metric for the sentences: **BLEU**" in text
    assert "distinct share" not in section(text, "Results at a glance")
    assert "distinct" not in line_with(section(text, "Per strategy"), "| metric | A ↑ |")
    # Results from before the subword checks: distinct share and length ratio only; a collapse by distinct
    # share is still flagged, the checks not recorded are named, their cells n/a.
    old = copy.deepcopy(results)
    for entry in old["strategies"].values():
        entry["outputs"] = {stat: entry["outputs"][stat] for stat in ("distinct_share", "length_ratio")}
    old["strategies"]["shared_layer"]["outputs"]["distinct_share"][2][0] = summarize([0.1, 0.2])
    write_report(old, tmp_path / "before", plots=False)
    before = (tmp_path / "before" / "analysis.md").read_text()
    assert "do not record the looping share, truncated share, wrong-language share" in section(before, "Output")
    assert (
        "| `shared_layer` | 2: javascript | python | **collapsed** (2 of 2 seeds) ⚠ | 0.1500 ± 0.0707 | n/a |" in before
    )
    # Stages scored before any statistic existed: null cells, or no `outputs` at all. Not "no collapse".
    for stat, cells in results["strategies"]["task_specific"]["outputs"].items():
        results["strategies"]["task_specific"]["outputs"][stat] = [[None] * len(row) for row in cells]
    del results["strategies"]["shared_layer"]["outputs"]
    write_report(results, tmp_path / "old", plots=False)
    old_text = (tmp_path / "old" / "analysis.md").read_text()
    assert "The results hold no output statistics" in section(old_text, "Output checks")
    assert "**Outputs**" not in old_text


def test_console_summary_is_a_table_of_a_f_and_bwt_per_strategy():
    results = json.loads(json.dumps(make_results(strategies=("task_specific", "shared_layer"))))
    lines = console_summary(results).splitlines()
    assert lines[0].startswith("BLEU (mean ± std over 2 seeds;")
    assert lines[1].split() == ["strategy", "A", "F", "BWT"]
    for line, name in zip(lines[2:], ("task_specific", "shared_layer")):
        cells = line.split()
        average = results["strategies"][name]["cl"]["bleu"]["average"]
        assert cells[0] == name and cells[1:4] == [f"{average['mean']:.3g}", "±", f"{average['std']:.1g}"]
    one_seed = json.loads(json.dumps(make_results(strategies=("lora_only",), seeds=(0,))))
    assert console_summary(one_seed).splitlines()[0].startswith("BLEU (1 seed;")
    assert console_summary({"strategies": {}}) == "no results yet"


def test_a_task_restricted_to_short_functions_says_so(tmp_path):
    results = make_results(seeds=(0,))
    results["config"].setdefault("data", {})["max_code_chars"] = 300
    write_report(results, tmp_path, plots=False)
    assert "at most 300 characters (`data.max_code_chars`" in section((tmp_path / "analysis.md").read_text(), "Setup")
    write_report(make_results(seeds=(0,)), tmp_path, plots=False)
    assert "max_code_chars" not in (tmp_path / "analysis.md").read_text()
