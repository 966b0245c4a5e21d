"""`hybridcl doctor CONFIG` and `python test_setup.py`: the config's model and data resolved without a
download, the plan printed, one FAIL line per problem and exit code 2 when anything would fail."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SEED = ROOT / "configs" / "seed.yaml"


def doctor(*args: str, env: dict[str, str], command=("-m", "hybridcl.cli", "doctor")) -> tuple[int, list[str], float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *command, *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True
    )
    return done.returncode, (done.stdout + done.stderr).splitlines(), time.perf_counter() - start


def line(lines: list[str], check: str) -> str:
    found = [text for text in lines if text.split("] ", 1)[-1].startswith(f"{check}: ")]
    assert len(found) == 1, lines
    return found[0]


@pytest.fixture
def empty_cache(tmp_path) -> dict[str, str]:
    return {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")}


def test_offline_without_a_cache_the_seed_config_fails_on_model_and_data_in_one_line_each(empty_cache):
    status, lines, _ = doctor(str(SEED), env={**empty_cache, "HF_HUB_OFFLINE": "1"})
    assert status == 2, lines
    for check in ("model", "data"):
        assert line(lines, check).startswith(f"[FAIL] {check}: ")
    assert "Salesforce/codet5-small" in line(lines, "model")
    assert line(lines, "plan").startswith("[ok] plan: 7 stage(s) to train")
    assert lines[-1].startswith("not ready: 2 problem(s)")
    assert not any(text.startswith("Traceback") for text in lines)


def test_an_unreachable_hub_is_one_fail_line_each(empty_cache):
    env = {**empty_cache, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}  # a closed local port
    status, lines, _ = doctor(str(SEED), env=env)  # how fast: tests/test_model_sources.py, without the start-up
    assert status == 2, lines
    assert line(lines, "model").startswith("[FAIL]") and line(lines, "data").startswith("[FAIL]")


def test_a_config_typo_is_one_fail_line(empty_cache):
    status, lines, _ = doctor(str(SEED), "--set", "train.bach_size=8", env={**empty_cache, "HF_HUB_OFFLINE": "1"})
    assert status == 2
    assert "train.bach_size" in line(lines, "config") and "[FAIL]" in line(lines, "config")


def test_test_setup_checks_the_seed_config(empty_cache):
    status, lines, _ = doctor(env={**empty_cache, "HF_HUB_OFFLINE": "1"}, command=("test_setup.py",))
    assert status == 2
    assert line(lines, "config").startswith(f"[ok] config: {SEED}")
