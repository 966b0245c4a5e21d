"""Bad input stops `hybridcl` before any work: exit code 2, one `hybridcl: error:` line that names the
problem, no traceback, and nothing written to the run folder."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from hybridcl.cli import main
from smoke import SMOKE

# (command-line arguments after the smoke config's paths, text the error line must hold)
CONFIG_CASES = {
    "negative weight decay": (["--set", "train.weight_decay=-1"], "train.weight_decay"),
    "unknown layer init": (["--set", "layer.init=zeros"], "layer.init"),
    "unknown layer position": (["--set", "layer.position=middle"], "layer.position"),
    "negative lora alpha": (["--set", "lora.alpha=-8"], "lora.alpha"),
    "warm-up beyond the run": (["--set", "train.warmup_ratio=2"], "train.warmup_ratio"),
    "negative clipping norm": (["--set", "train.max_grad_norm=-1"], "train.max_grad_norm"),
    "unknown base size": (["--set", "offline.base_size=huge"], "offline.base_size"),
    "zero seeds": (["--seeds", "0"], "seeds"),
    "a typo in a key": (["--set", "train.lrr=0.1"], "lrr"),
    "broken YAML in --set": (["--set", "lora.target_modules=[q"], "lora.target_modules"),
    "target modules the model lacks": (["--set", "lora.target_modules=[qq]"], "qq"),
    "a missing data folder": (["--set", "data.source=/nowhere/corpus"], "/nowhere/corpus"),
    "a prompt without its placeholder": (["--set", "data.prompt_generate=Code:"], "data.prompt_generate"),
    "a causal base's position on T5": (["--set", "layer.position=after:1"], "does not fit a seq2seq base"),
    "a causal base's init on T5": (["--set", "layer.init=copy"], "layer.init 'copy' does not fit a seq2seq base"),
    "an unknown dtype": (["--set", "model.dtype=int8"], "model.dtype"),
}
# (language, split, file content) -> the split is unusable
DATA_CASES = {
    "empty python train": ("python", "train", b""),
    "all-invalid javascript train": ("javascript", "train", b"{oops\n[1, 2]\n"),
    "empty python valid": ("python", "valid", b""),
}


def smoke_args(assets: dict, out: Path, corpus: Path | None = None) -> list[str]:
    return [
        "run",
        str(SMOKE),
        "--out",
        str(out),
        "--set",
        f"data.source={corpus or assets['corpus']}",
        "--set",
        f"model.name={assets['base']}",
        "--set",
        f"data.cache_dir={assets['cache']}",
    ]


def assert_one_line_error(capsys, status: int, expected: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("hybridcl: error: "), err
    assert "Traceback" not in err and expected in lines[0]
    return lines[0]


@pytest.mark.parametrize("extra, expected", CONFIG_CASES.values(), ids=CONFIG_CASES.keys())
def test_an_impossible_setting_is_one_line_before_any_work(smoke_assets, tmp_path, capsys, extra, expected):
    out = tmp_path / "run"
    status = main(smoke_args(smoke_assets, out) + extra)
    assert_one_line_error(capsys, status, expected)
    assert not out.exists()


@pytest.mark.parametrize("language, split, content", DATA_CASES.values(), ids=DATA_CASES.keys())
def test_an_unusable_split_stops_the_run_before_stage_0(smoke_assets, tmp_path, capsys, language, split, content):
    corpus = tmp_path / "corpus"
    shutil.copytree(smoke_assets["corpus"], corpus)
    path = corpus / language / f"{split}.jsonl.gz"
    path.write_bytes(gzip.compress(content))
    out = tmp_path / "run"
    line = assert_one_line_error(
        capsys, main(smoke_args(smoke_assets, out, corpus)), f"{language} {split} split has no usable records"
    )
    assert str(path) in line
    assert ("2 read, all skipped: bad_json 2" if content else "0 read, all skipped") in line
    assert not out.exists()


def test_report_on_a_folder_without_results(tmp_path, capsys):
    assert_one_line_error(capsys, main(["report", str(tmp_path)]), "no results file")


def test_a_missing_config_file(tmp_path, capsys):
    assert_one_line_error(capsys, main(["run", str(tmp_path / "nope.yaml")]), "nope.yaml")
