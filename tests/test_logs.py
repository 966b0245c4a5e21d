"""Logs and progress output: run.log in the run folder, `--log-level debug`, and what the console looks like
when it is a file. One run folder of configs/smoke.yaml is started three times as real processes with
stdout and stderr going to a file: at info level, then at debug level with a second seed to train, then
with a saved layer corrupted, which stops it with an unexpected error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import hybridcl.continual as continual
from hybridcl import __version__, progress
from hybridcl.cli import main
from hybridcl.logs import BUILD_LOG, RUN_LOG, console_logging, log_file
from hybridcl.model.pretrain import BUILD_INFO
from hybridcl.progress import Progress
from smoke import SMOKE

HEADER_START = re.compile(r"^\S+ \S+ INFO +hybridcl\.logs: start: ", re.MULTILINE)
DURATION = r"(?:[\d.]+ s|\d+ min \d+ s|\d+ h \d+ min)"  # hybridcl.logs.duration
STEP_LINE = re.compile(
    r"DEBUG +hybridcl\.train: train (\S+ s\d seed\d) step (\d+)/(\d+): loss (\S+), lr (\S+), (\S+) s$"
)


def smoke_args(assets: dict, out: Path, *extra: str) -> list[str]:
    sets = [f"data.source={assets['corpus']}", f"model.name={assets['base']}", f"data.cache_dir={assets['cache']}"]
    return ["run", str(SMOKE), "--out", str(out), *[arg for value in sets for arg in ("--set", value)], *extra]


def start(assets: dict, out: Path, console: Path, *extra: str) -> subprocess.CompletedProcess:
    """`hybridcl run` as a process whose stdout goes to the file `console` (stderr too, or else returned)."""
    command = [sys.executable, "-m", "hybridcl.cli", *smoke_args(assets, out, *extra)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYBRIDCL_KILL_AT", None)
    with console.open("w") as sink:
        return subprocess.run(command, env=env, stdout=sink, stderr=subprocess.PIPE, text=True, timeout=600)


@pytest.fixture(scope="module")
def starts(smoke_assets, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("logs")
    out = root / "run"
    consoles = [root / f"console{k}.txt" for k in range(3)]
    first = start(smoke_assets, out, consoles[0])
    assert first.returncode == 0, first.stderr[-3000:]
    configs = [(out / "config.yaml").read_text()]
    second = start(smoke_assets, out, consoles[1], "--seeds", "2", "--log-level", "debug")
    assert second.returncode == 0, second.stderr[-3000:]
    configs.append((out / "config.yaml").read_text())
    (out / "experiment_2_results" / "seed1" / "stage2" / "stage.json").unlink()  # restored next time, so read
    (out / "experiment_2_results" / "seed1" / "stage1" / "layers" / "shared.safetensors").write_text("not weights")
    failed = start(smoke_assets, out, consoles[2], "--seeds", "2")
    sections = HEADER_START.split((out / RUN_LOG).read_text())[1:]
    return {"out": out, "consoles": consoles, "configs": configs, "failed": failed, "sections": sections}


def test_the_console_in_a_file_has_no_carriage_return_and_no_blank_line(starts):
    for console in starts["consoles"][:2]:
        text = console.read_text()
        assert "\r" not in text and "" not in text.splitlines(), console
        assert "train task_specific s1 seed" in text and "steps in" in text  # the progress's final lines


def test_each_start_appends_its_header_naming_command_version_and_config(starts):
    sections, configs = starts["sections"], starts["configs"]
    assert len(sections) == 3
    for section, config in zip(sections, [*configs, configs[1]]):
        header = section.splitlines()[:5]
        assert str(SMOKE) in header[0] and " run " in header[0] and "--out" in header[0]
        assert f"hybridcl: {__version__} (Python " in header[1] and "torch " in header[1]
        assert header[2].split("hybridcl.logs: ")[1].startswith("host: ") and "devices: CPU" in header[3]
        digest = header[4].split("config.yaml sha256: ")[1]
        assert hashlib.sha256(config.encode()).hexdigest().startswith(digest) and len(digest) >= 12
    assert configs[0] != configs[1]  # the second start added a seed: its header names the new config


def test_stages_log_their_start_and_end_with_wall_times(starts):
    first = starts["sections"][0]
    for line in (
        "every strategy stage 0 seed 0: start",
        "train task_specific s1 seed0: start, 3 steps",
        "eval task_specific s1 seed0 javascript: start, 1 batch",
        "task_specific stage 2 seed 0: start",
    ):
        assert f": {line}\n" in first, line
    for ending in (
        rf"every strategy stage 0 seed 0: evaluated in {DURATION}",
        rf"train task_specific s1 seed0: 3 steps in {DURATION}, .*loss [\d.]+, .*",
        rf"eval task_specific s1 seed0 javascript: 1 batch in {DURATION}, .*",
        rf"eval task_specific s1 seed0 javascript: scored in {DURATION}",
        rf"task_specific stage 2 seed 0: trained and evaluated in {DURATION}",
        rf"finished in {DURATION}",
    ):
        assert re.search(rf"^\S+ \S+ INFO +hybridcl\.\w+: {ending}$", first, re.MULTILINE), ending
    console = starts["consoles"][0].read_text()
    assert "task_specific stage 2 seed 0: trained and evaluated in" in console
    assert "start, 3 steps" not in console and "config.yaml sha256" not in console  # the file's own lines


def test_debug_level_logs_every_step_and_info_level_none(starts):
    first, second = starts["sections"][:2]
    assert not STEP_LINE.search(first) and " DEBUG " not in first
    steps = [match.groups() for match in map(STEP_LINE.search, second.splitlines()) if match]
    trained = ("task_specific s1 seed1", "task_specific s2 seed1", "shared_layer s2 seed1")  # seed 0 is restored
    assert [(desc, int(step), int(total)) for desc, step, total, *_ in steps] == [
        (desc, step, 3) for desc in trained for step in (1, 2, 3)
    ]
    stage = json.loads((starts["out"] / "experiment_1_results" / "seed1" / "stage1" / "stage.json").read_text())
    losses = [float(loss) for desc, _, _, loss, _, _ in steps if desc == "task_specific s1 seed1"]
    assert losses == pytest.approx(stage["train"]["losses"], abs=1e-4)  # the loss each step trained on
    rates = [float(lr) for desc, _, _, _, lr, _ in steps if desc == "task_specific s1 seed1"]
    assert rates == pytest.approx([1e-3, 2e-3 / 3, 1e-3 / 3], rel=1e-2)  # linear decay from train.lr, no warm-up
    assert all(float(seconds) > 0 for *_, seconds in steps)
    assert "step 1/3" not in starts["consoles"][1].read_text()  # debug lines go to the file only


def test_an_unexpected_error_is_one_console_line_and_its_traceback_is_in_run_log(starts):
    failed, out = starts["failed"], starts["out"]
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "Traceback" not in failed.stderr, failed.stderr
    assert errors[0].startswith("hybridcl: error: SafetensorError: ")
    assert errors[0].endswith(f"(full traceback in {out / RUN_LOG})")
    last = starts["sections"][2]
    assert "ERROR   hybridcl.logs: stopped by an unexpected error\nTraceback (most recent call last):\n" in last
    assert "in load_layer" in last and last.rstrip().splitlines()[-1].startswith("safetensors")
    assert "finished in" not in last


def test_a_user_error_and_an_interrupt_are_the_last_line_of_run_log(smoke_assets, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    out.mkdir()  # a folder that exists: the log is written from the start

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(continual.ContinualRun, "run", interrupted)
    assert main(smoke_args(smoke_assets, out)) == 130
    assert (out / RUN_LOG).read_text().rstrip().endswith("WARNING hybridcl.logs: stopped: interrupted")
    assert capsys.readouterr().err.startswith("hybridcl: interrupted")
    monkeypatch.undo()
    assert main(smoke_args(smoke_assets, out, "--set", "model.name=/nonexistent/base")) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("hybridcl: error: ") and "/nonexistent/base" in error
    last = (out / RUN_LOG).read_text().rstrip().splitlines()[-1]
    assert last.split("ERROR   hybridcl.logs: stopped: ")[1] == error.removeprefix("hybridcl: error: ")
    assert len(HEADER_START.findall((out / RUN_LOG).read_text())) == 2


def test_without_a_terminal_a_loop_logs_a_line_per_interval_and_a_final_one(monkeypatch, caplog):
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    caplog.set_level("INFO", logger="hybridcl.progress")
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL_S", 0.0)
    with Progress(3, "train x", "step") as bar:
        for _ in range(3):
            bar.note("loss 0.5")
            bar.update()
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "train x: start, 3 steps"
    assert re.fullmatch(r"train x: 1/3 steps \(33%\), .+, ~[\d.]+ s left, loss 0\.5", lines[1])
    assert lines[2].startswith("train x: 2/3 steps (67%)") and len(lines) == 4
    assert re.fullmatch(r"train x: 3 steps in [\d.]+ s, .+, loss 0\.5", lines[3])
    caplog.clear()
    monkeypatch.setattr(progress, "PROGRESS_INTERVAL_S", 3600.0)
    with Progress(5, "eval y", "batch") as bar:
        bar.update(2)
    assert [record.getMessage() for record in caplog.records][0] == "eval y: start, 5 batches"
    assert re.fullmatch(rf"eval y: stopped at 2/5 batches after {DURATION}", caplog.records[1].getMessage())
    assert len(caplog.records) == 2


def test_base_build_keeps_its_log_in_the_output_folder_across_the_final_swap(smoke_assets, tmp_path):
    out = tmp_path / "base"
    build = ["base", "build", "--corpus", str(smoke_assets["corpus"]), "--out", str(out), "--size", "micro"]
    assert main([*build, "--steps", "2", "--log-level", "debug"]) == 0
    log = (out / BUILD_LOG).read_text()
    assert len(HEADER_START.findall(log)) == 1 and '"size": "micro"' in log and '"steps": 2' in log
    assert re.search(r"DEBUG +hybridcl\.model\.pretrain: pre-training micro stand-in step 2/2: loss \S+, lr \S+", log)
    assert re.search(rf"INFO +hybridcl\.logs: finished in {DURATION}$", log.rstrip())  # written after the swap
    assert (
        BUILD_LOG not in json.loads((out / BUILD_INFO).read_text())["files"] and (out / "model.safetensors").is_file()
    )


def test_library_warnings_go_to_stderr_and_into_the_log_once(tmp_path, capsys):
    with console_logging(), log_file(tmp_path / "some.log"), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library's warning", UserWarning)
        logging.getLogger("transformers.generation.utils").warning("a transformers warning")
        logging.getLogger("hybridcl.some_module").warning("a warning of ours")
        logging.getLogger("hybridcl.some_module").info("a line of ours")
    out, err = capsys.readouterr()
    log = (tmp_path / "some.log").read_text()
    assert "UserWarning: a library's warning" in err and "a warning of ours" in err and "a line of ours" in out
    for line in ("UserWarning: a library's warning", "a transformers warning", "a warning of ours", "a line of ours"):
        assert log.count(line) == 1, line
    assert re.search(r"WARNING +py\.warnings: .*UserWarning: a library's warning", log)
