"""The seed's own path without the hub: configs/seed.yaml on a replica of CodeSearchNet's parquet layout
(`data.hub_root`) and a model folder in codet5-small's format, through the very loading code the hub
root and the hub name take, nothing monkeypatched. Then the same config on a replica of each of the
other forms CodeSearchNet is served in (`hybridcl corpus replica --form`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridcl.cli import main
from hybridcl.config import load_config
from hybridcl.data.csn import load_task_data
from hybridcl.data.forms import FORMS
from hybridcl.data.source import resolve_data
from hybridcl.model.replica import corpus_texts, write_codet5_small_replica
from hybridcl.run_files import RESULTS_FILE

SEED = Path(__file__).parents[1] / "configs" / "seed.yaml"
SMOKE_SIZES = [
    "data.n_train=24",
    "data.n_valid=6",
    "data.max_source_tokens=48",
    "data.max_target_tokens=48",
    "train.epochs=1",
    "eval.max_new_tokens=16",
    "eval.batch_size=8",
    "strategies=[task_specific, shared_layer]",
]

# The smoke corpus's python splits (60 train, 12 valid rows) sampled at SMOKE_SIZES: read, examined, used.
SMOKE_PYTHON_COUNTS = {
    "train_read": 60,
    "train_examined": 24,
    "train": 24,
    "valid_read": 12,
    "valid_examined": 6,
    "valid": 6,
}


@pytest.fixture(scope="module")
def hub_replica(smoke_assets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hub-replica")
    assert main(["corpus", "replica", "--corpus", str(smoke_assets["corpus"]), "--out", str(out), "--shards", "3"]) == 0
    return out


def test_the_replica_has_the_hub_layout(hub_replica):
    for language in ("python", "javascript"):
        for split in ("train", "validation", "test"):
            assert sorted(p.name for p in (hub_replica / language / split).iterdir()) == [
                "0000.parquet",
                "0001.parquet",
                "0002.parquet",
            ]


@pytest.fixture(scope="module")
def codet5_replica(smoke_assets, tmp_path_factory) -> Path:
    """A model folder in codet5-small's own format (random weights): what the hub name loads."""
    out = tmp_path_factory.mktemp("codet5-small") / "model"
    write_codet5_small_replica(out, corpus_texts(smoke_assets["corpus"]))
    return out


def run_seed_config(data_root: Path, model: Path, tmp_path: Path, capsys, *extra: str) -> dict:
    """configs/seed.yaml at SMOKE_SIZES on a data replica and a model folder, into tmp_path/run: its results."""
    overrides = [
        f"data.hub_root={data_root}",
        f"model.name={model}",
        f"data.cache_dir={tmp_path / 'cache'}",
        *SMOKE_SIZES,
        *extra,
    ]
    out = tmp_path / "run"
    status = main(["run", str(SEED), "--out", str(out), *[arg for o in overrides for arg in ("--set", o)]])
    assert status == 0, capsys.readouterr().err
    return json.loads((out / RESULTS_FILE).read_text())


@pytest.mark.slow
def test_seed_config_runs_on_both_replicas_and_writes_its_report(
    smoke_assets, hub_replica, codet5_replica, tmp_path, capsys
):
    out = tmp_path / "run"
    results = run_seed_config(hub_replica, codet5_replica, tmp_path, capsys)
    assert results["finished"] is True and results["config"]["data"]["source"] == "hub"
    assert results["data"]["python"]["counts"] == SMOKE_PYTHON_COUNTS
    assert (out / "analysis.md").is_file()
    assert "python      train        60 ->        24 ->      24" in capsys.readouterr().out


@pytest.fixture(scope="module")
def form_replicas(smoke_assets, hub_replica, tmp_path_factory) -> dict[str, Path]:
    """The smoke corpus in each form, written by `hybridcl corpus replica --form`."""
    out = {FORMS[0]: hub_replica}
    for form in FORMS[1:]:
        out[form] = tmp_path_factory.mktemp(form)
        args = ["corpus", "replica", "--corpus", str(smoke_assets["corpus"]), "--out", str(out[form]), "--form", form]
        assert main(args) == 0
    return out


@pytest.mark.parametrize("form", FORMS)
def test_the_seed_config_reads_the_same_tasks_from_every_form(form_replicas, tmp_path, form):
    tasks = {}
    for name in (FORMS[0], form):
        overrides = [f"data.hub_root={form_replicas[name]}", f"data.cache_dir={tmp_path / name}", *SMOKE_SIZES]
        data = load_config(SEED, overrides).data
        source = resolve_data(data, data.languages)
        assert (source.kind, source.form, source.id) == ("local", name, str(form_replicas[name]))
        tasks[name] = [load_task_data(data, language, source) for language in data.languages]
    assert [task.counts["train_read"] for task in tasks[form]] == [60, 60]
    for ours, theirs in zip(tasks[form], tasks[FORMS[0]]):
        assert (ours.train, ours.valid, ours.counts) == (theirs.train, theirs.valid, theirs.counts)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["release-zip"])
def test_the_seed_config_runs_on_a_release_form(form_replicas, codet5_replica, tmp_path, capsys, form):
    results = run_seed_config(form_replicas[form], codet5_replica, tmp_path, capsys, "strategies=[task_specific]")
    assert results["finished"] is True and set(results["strategies"]) == {"task_specific"}
    assert results["data"]["python"]["counts"] == SMOKE_PYTHON_COUNTS
