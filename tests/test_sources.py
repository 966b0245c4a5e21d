"""A run records where its model and data came from (results `sources`, `sources.json`), and a run
continued on other bytes is refused in one line, while the same bytes continue."""

from __future__ import annotations

import json
import shutil

import pytest

from hybridcl.cli import main
from hybridcl.data.pinning import DataSource
from hybridcl.run_files import RESULTS_FILE
from hybridcl.settings import ConfigError
from hybridcl.sources import SOURCES_FILE, check_continuation, record_sources

SMOKE = "configs/smoke.yaml"


def run(assets, corpus, out, *extra: str) -> int:
    overrides = [
        f"data.source={corpus}",
        f"model.name={assets['base']}",
        f"data.cache_dir={assets['cache']}",
        "strategies=[lora_only]",
        "data.languages=[python]",
        *extra,
    ]
    return main(["run", SMOKE, "--out", str(out), *[arg for o in overrides for arg in ("--set", o)]])


def test_a_run_records_its_sources_and_refuses_to_continue_on_other_data(smoke_assets, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(smoke_assets["corpus"], corpus)
    out = tmp_path / "run"
    assert run(smoke_assets, corpus, out) == 0
    printed = capsys.readouterr().out
    sources = json.loads((out / RESULTS_FILE).read_text())["sources"]
    assert sources["model"]["kind"] == "directory" and sources["model"]["form"] == "safetensors"
    assert sources["model"]["fingerprint"].startswith("sha256:") and sources["model"]["commit"] is None
    assert sources["data"]["kind"] == "corpus" and sources["data"]["fingerprint"].startswith("sha256:")
    assert {name for name, _ in sources["data"]["files"]} >= {"python/train.jsonl.gz", "python/valid.jsonl.gz"}
    assert all(size > 0 for _, size in sources["data"]["files"] + sources["model"]["files"])
    recorded = json.loads((out / SOURCES_FILE).read_text())
    assert {key: {k: v for k, v in record.items() if k != "identity"} for key, record in recorded.items()} == sources
    assert f"data: {corpus}" in printed and "model: " in printed
    rows = (out / "stage0" / "seed0" / "predictions" / "python.jsonl").read_text().splitlines()
    assert json.loads(rows[0])["source"].startswith("generate python: ")  # as the model read it (task_prefix)

    assert run(smoke_assets, corpus, out, "seeds=2") == 0  # same bytes: continues, adds a seed
    assert json.loads((out / SOURCES_FILE).read_text()) == recorded

    valid = corpus / "python" / "valid.jsonl.gz"
    valid.write_bytes(valid.read_bytes() + b"")  # same bytes, new mtime: still the same data
    assert run(smoke_assets, corpus, out, "seeds=2") == 0
    shutil.copy(corpus / "python" / "test.jsonl.gz", valid)  # other bytes under the same name
    capsys.readouterr()
    assert run(smoke_assets, corpus, out, "seeds=2") == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "holds stages trained on data corpus@sha256:" in error[0]
    assert SOURCES_FILE in error[0]


def test_a_hub_source_on_another_commit_is_refused_with_the_revision_to_pin(tmp_path):
    def data(commit: str) -> DataSource:
        files = (("data/python.zip", 10),)
        return DataSource("hub", "code-search-net/code_search_net", "main", commit, None, "release-zip", files, True, 0)

    before, now = data("a" * 40), data("b" * 40)
    record_sources(tmp_path, {"data": before})
    check_continuation(tmp_path, {"data": before})  # the same commit continues
    with pytest.raises(ConfigError) as refused:
        check_continuation(tmp_path, {"data": now})
    message = str(refused.value)
    assert "\n" not in message and f"release-zip@{'b' * 40}" in message
    assert f"--set data.hub_revision={'a' * 40}" in message
