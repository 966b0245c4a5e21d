"""`hybridcl sweep` on configs/smoke.yaml: the points, the summary taken from each point's results, resuming."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

import hybridcl.continual as continual
from hybridcl.cli import main
from hybridcl.continual import ContinualRun
from hybridcl.errors import UserError
from hybridcl.folder_lock import hold
from hybridcl.logs import RUN_LOG, SWEEP_LOG
from hybridcl.run_files import ANALYSIS_FILE, RESULTS_FILE
from hybridcl.settings import ConfigError
from hybridcl.sweep import pareto_front, parse_grid, run_sweep, sweep_points
from smoke import SMOKE
from test_continual import counting
from test_report import section

GRID = ["lora.r=2,4", "layer.count=0,1"]
POINTS = ["lora.r=2,layer.count=0", "lora.r=2,layer.count=1", "lora.r=4,layer.count=0", "lora.r=4,layer.count=1"]


def smoke_overrides(assets: dict) -> list[str]:
    return [
        f"data.source={assets['corpus']}",
        f"model.name={assets['base']}",
        f"data.cache_dir={assets['cache']}",
        "strategies=[task_specific, lora_only]",
    ]


@pytest.fixture(scope="module")
def sweep(smoke_assets, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sweep")
    return out, run_sweep(SMOKE, parse_grid(GRID), smoke_overrides(smoke_assets), out)


def test_every_point_is_a_finished_run_folder(sweep):
    out, summary = sweep
    assert [row["point"] for row in summary["points"]] == POINTS
    assert [row["overrides"] for row in summary["points"]][1] == {"lora.r": 2, "layer.count": 1}
    for point in POINTS:
        results = json.loads((out / point / RESULTS_FILE).read_text())
        assert results["finished"] is True
        r, count = (int(part.split("=")[1]) for part in point.split(","))
        assert (results["config"]["lora"]["r"], results["config"]["layer"]["count"]) == (r, count)


def test_the_summary_holds_each_points_own_figures(sweep):
    out, summary = sweep
    saved = json.loads((out / "sweep_summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["metric"] == "bleu" and saved["grid"] == {"lora.r": [2, 4], "layer.count": [0, 1]}
    for row in saved["points"]:
        results = json.loads((out / row["point"] / RESULTS_FILE).read_text())
        assert list(row["strategies"]) == ["task_specific", "lora_only"]
        for name, entry in row["strategies"].items():
            params = results["strategies"][name]["params"]
            average = results["strategies"][name]["cl"]["bleu"]["average"]
            assert entry["trainable"] == max(stage["trainable"] for stage in params["per_stage"])
            assert entry["stored"] == params["stored"]
            assert entry["average"] == {key: average[key] for key in ("mean", "std", "ci95", "n")}
            assert entry["average"]["n"] == 1
    trainable = {row["point"]: row["strategies"]["task_specific"]["trainable"] for row in saved["points"]}
    assert (
        trainable["lora.r=2,layer.count=0"] < trainable["lora.r=4,layer.count=0"] < trainable["lora.r=4,layer.count=1"]
    )


def test_count_0_makes_task_specific_what_lora_only_is(sweep):
    _, summary = sweep
    for row in summary["points"]:
        specific, lora_only = (figures(row["strategies"][name]) for name in ("task_specific", "lora_only"))
        assert (specific == lora_only) == (row["overrides"]["layer.count"] == 0), row["point"]


def figures(entry: dict) -> tuple:
    return entry["trainable"], entry["stored"], entry["average"]


def test_the_sweep_keeps_a_log_and_each_point_its_own(sweep):
    out, _ = sweep
    sweep_log = (out / SWEEP_LOG).read_text()
    assert f"hybridcl.logs: sweep: 4 point(s) of {SMOKE}: {', '.join(POINTS)}\n" in sweep_log
    assert "sweep point 4/4: lora.r=4,layer.count=1\n" in sweep_log and "sweep summary: " in sweep_log
    assert sweep_log.count("task_specific stage 2 seed 0: trained and evaluated in ") >= 4  # the points' lines too
    assert "config.yaml sha256" not in sweep_log  # but not their headers
    for point in POINTS:
        log = (out / point / RUN_LOG).read_text()
        digest = log.split("hybridcl.logs: config.yaml sha256: ")[1].split()[0]
        assert hashlib.sha256((out / point / "config.yaml").read_bytes()).hexdigest().startswith(digest)
        assert "lora_only stage 2 seed 0: trained and evaluated in " in log and "sweep point" not in log


def test_the_markdown_table_and_the_pareto_plot(sweep):
    out, summary = sweep
    table = (out / "sweep_summary.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| lora.r=")]
    assert len(rows) == 8
    first = summary["points"][0]["strategies"]["task_specific"]
    cells = [cell.strip() for cell in rows[0].split("|")[1:-1]]
    assert cells[:4] == ["lora.r=2,layer.count=0", "task_specific", f"{first['trainable']:,}", f"{first['stored']:,}"]
    assert cells[4].startswith(f"{first['average']['mean']:.4f} ± ")
    assert (out / "sweep_pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    entries = [entry for row in summary["points"] for entry in row["strategies"].values()]
    for axis in ("trainable", "stored"):
        front = pareto_front([(entry[axis], entry["average"]["mean"]) for entry in entries])
        assert {k for k, entry in enumerate(entries) if entry["pareto"][axis]} == front
    marks = [line.split("|")[-2].strip() for line in rows]
    mark = {(True, True): "T+S", (True, False): "T", (False, True): "S", (False, False): ""}
    assert marks == [mark[entry["pareto"]["trainable"], entry["pareto"]["stored"]] for entry in entries]


def test_rq3_of_every_point_sets_it_among_the_sweeps_points(sweep):
    out, summary = sweep
    front = [
        f"{name} at {row['point']}"
        for row in summary["points"]
        for name, entry in row["strategies"].items()
        if entry["pareto"]["trainable"]
    ]
    for point in POINTS:
        rq3 = section((out / point / ANALYSIS_FILE).read_text(), "RQ3")
        assert "Across the capacity sweep this run is a point of (4 points" in rq3
        assert sum(line.startswith("| lora.r=") for line in rq3.splitlines()) == 8
        assert f"Pareto front of A against trainable parameters: {', '.join(front)}." in rq3


def test_hybridcl_report_on_a_point_finds_its_sweep(sweep, tmp_path):
    out, _ = sweep
    copy = tmp_path / "sweep"
    shutil.copytree(out, copy)
    point = copy / POINTS[0]
    (point / ANALYSIS_FILE).unlink()
    assert main(["report", str(point)]) == 0
    assert "Across the capacity sweep" in (point / ANALYSIS_FILE).read_text()
    (copy / "sweep_summary.json").unlink()
    assert main(["report", str(point)]) == 0
    assert "Across the capacity sweep" not in (point / ANALYSIS_FILE).read_text()


def test_a_second_call_trains_nothing_and_gives_the_same_summary(sweep, smoke_assets, monkeypatch):
    out, summary = sweep
    trained = counting(monkeypatch)
    again = run_sweep(SMOKE, parse_grid(GRID), smoke_overrides(smoke_assets), out)
    assert trained == []
    assert again == summary


def test_a_run_folder_from_before_layer_count_continues_as_one_block(sweep, smoke_assets, tmp_path, monkeypatch):
    folder = tmp_path / "old"
    shutil.copytree(sweep[0] / POINTS[1], folder)
    config = (folder / "config.yaml").read_text()
    assert "  count: 1\n" in config
    (folder / "config.yaml").write_text(config.replace("  count: 1\n", ""))
    one, two = (point_config(smoke_assets, count) for count in (1, 2))
    trained = counting(monkeypatch)
    assert ContinualRun(one, folder).run()["finished"] is True
    assert trained == []
    with pytest.raises(ConfigError, match="layer.count: 1 there, 2 now"):
        ContinualRun(two, folder).run()


def point_config(smoke_assets: dict, count: int):
    grid = parse_grid(["lora.r=2", f"layer.count={count}"])
    return sweep_points(SMOKE, grid, smoke_overrides(smoke_assets))[0].config


class Interrupted(Exception):
    pass


def test_a_killed_sweep_continues_where_it_stopped(smoke_assets, tmp_path, monkeypatch):
    """Killed in the second point's stage 2: started again, the first point and the second's stage 1 are
    restored, and only the rest is trained."""
    grid, overrides, out = parse_grid(["lora.r=2", "layer.count=0,1"]), smoke_overrides(smoke_assets), tmp_path
    real_train_stage, calls = continual.train_stage, []

    def train_stage_dying_at_the_sixth(model, loader, train, accelerator, desc="", **hooks):
        calls.append(desc)
        if len(calls) == 6:  # the first point trains 4 stages; then task_specific s1, s2 of the second
            raise Interrupted(desc)
        return real_train_stage(model, loader, train, accelerator, desc, **hooks)

    monkeypatch.setattr(continual, "train_stage", train_stage_dying_at_the_sixth)
    with pytest.raises(Interrupted, match="task_specific s2 seed0"):
        run_sweep(SMOKE, grid, overrides, out)
    assert not (out / "sweep_summary.json").exists()
    monkeypatch.setattr(continual, "train_stage", real_train_stage)
    trained = counting(monkeypatch)
    summary = run_sweep(SMOKE, grid, overrides, out)
    assert trained == ["task_specific s2 seed0", "lora_only s1 seed0", "lora_only s2 seed0"]
    assert [row["point"] for row in summary["points"]] == POINTS[:2]
    assert all(row["finished"] for row in summary["points"])


@pytest.mark.parametrize(
    "grid, message",
    [
        (["lora.r=4,0"], "sweep point lora.r=0: lora.r must be positive, got 0"),
        (["lora.rr=4"], "sweep point lora.rr=4: unknown key(s) ['lora.rr']"),
        (["layer.count=1,0", "strategies=[task_specific],[layer_only]"], "strategy 'layer_only' nothing to train"),
        (["layer.position=encoder_top,middle"], "sweep point layer.position=middle: layer.position must be one of"),
    ],
)
def test_a_grid_value_the_config_refuses_stops_the_sweep_before_anything_runs(smoke_assets, tmp_path, grid, message):
    out = tmp_path / "sweep"
    with pytest.raises(ConfigError) as caught:
        run_sweep(SMOKE, parse_grid(grid), smoke_overrides(smoke_assets), out)
    assert message in str(caught.value)
    assert not out.exists()


@pytest.mark.parametrize(
    "texts, message",
    [
        (["lora.r"], "not of the form key=value,value"),
        (["lora.r="], "not of the form"),
        (["lora.r=4,8", "lora.r=16"], "lora.r is given twice"),
        (["lora.r=4,4"], "repeated values"),
        (["lora.r=[4"], "not valid YAML"),
        ([], "at least one --grid"),
    ],
)
def test_a_malformed_grid_is_refused(texts, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        parse_grid(texts)


def test_grid_values_are_read_as_yaml_and_points_are_the_cartesian_product(smoke_assets):
    grid = parse_grid(["lora.r=4, 8", "layer.position=encoder_top,decoder_top", "lora.target_modules=[q],[q, v]"])
    assert grid == {
        "lora.r": [4, 8],
        "layer.position": ["encoder_top", "decoder_top"],
        "lora.target_modules": [["q"], ["q", "v"]],
    }
    points = sweep_points(SMOKE, grid, smoke_overrides(smoke_assets))
    assert len(points) == 8
    assert points[0].name == "lora.r=4,layer.position=encoder_top,lora.target_modules=[q]"
    last = points[-1]
    assert last.name == "lora.r=8,layer.position=decoder_top,lora.target_modules=[q,v]"
    assert (last.config.lora.r, last.config.layer.position, last.config.lora.target_modules) == (
        8,
        "decoder_top",
        ("q", "v"),
    )


def test_the_pareto_front():
    #          0: dominated by 1   1            2: fewer params  3: no score  4: ties 1
    pairs = [(100, 0.10), (100, 0.20), (10, 0.05), (5, None), (100, 0.20), (1000, 0.15)]
    assert pareto_front(pairs) == {1, 2, 4}


def test_the_sweep_command_refuses_a_bad_value_in_one_line(smoke_assets, tmp_path, capsys):
    out = tmp_path / "sweep"
    sets = [arg for override in smoke_overrides(smoke_assets) for arg in ("--set", override)]
    status = main(["sweep", str(SMOKE), "--grid", "lora.r=4,0", "--out", str(out), *sets])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("hybridcl: error: sweep point lora.r=0: lora.r must be positive, got 0")
    assert not out.exists()


# ------------------------------------------------------------------------------ points as local jobs


def test_points_as_local_jobs_two_at_once_equal_the_sequential_sweep(sweep, smoke_assets, tmp_path):
    sequential_out, sequential = sweep
    out = tmp_path / "jobs"
    summary = run_sweep(SMOKE, parse_grid(GRID), smoke_overrides(smoke_assets), out, launcher="local", parallel=2)
    for point in POINTS:
        assert json.loads((out / point / RESULTS_FILE).read_text())["finished"] is True
        # every prediction and its BLEU and METEOR (not CodeBLEU: its dataflow part hangs on str hashing, and
        # pytest's is not pinned as the command line's is)
        mine, theirs = (predictions(folder / point) for folder in (out, sequential_out))
        assert len(mine) == 10 and mine == theirs, point  # 2 tasks after stage 0 and two strategies' stages 1, 2
        console = [path.read_text() for path in (out / point / "jobs").glob("*_log.out")]
        assert len(console) == 1 and "task_specific stage 2 seed 0: trained and evaluated" in console[0]
        assert (out / point / RUN_LOG).is_file()
    mine, theirs = (
        [row["strategies"]["lora_only"]["average"]["mean"] for row in s["points"]] for s in (summary, sequential)
    )
    assert mine == theirs and summary["partial"] is None
    assert status_lines(out)[0] == f"sweep {out}: 4 done (of 4 points)"


def test_a_failed_job_is_named_with_its_log_in_the_status_and_the_summary_waits_for_it(smoke_assets, tmp_path, capsys):
    out = tmp_path / "sweep"
    held = out / "lora.r=2"
    with hold(held), pytest.raises(UserError) as failed:
        run_sweep(SMOKE, parse_grid(["lora.r=2,4"]), smoke_overrides(smoke_assets), out, launcher="local", parallel=2)
    message = str(failed.value)
    assert message.startswith("1 of 2 sweep job(s) failed; lora.r=2: ")
    assert f"run folder {held} is in use by pid {os.getpid()}" in message and str(held / "jobs") in message
    assert json.loads((out / "lora.r=4" / RESULTS_FILE).read_text())["finished"] is True
    assert not (out / "sweep_summary.json").exists()  # written when the last point finishes

    head, failed_line, done_line = status_lines(out)
    assert head == f"sweep {out}: 1 done, 1 failed (of 2 points)" and done_line == "lora.r=4  done"
    assert failed_line.startswith(f"lora.r=2  failed: run folder {held} is in use by pid {os.getpid()} on host ")
    assert failed_line.endswith(".err)") and f"(log {held / 'jobs'}/" in failed_line
    with hold(held):  # a live holder: running, whatever failed before
        running = status_lines(out)[1]
    assert running.startswith(f"lora.r=2  running: pid {os.getpid()} on host ") and "; failed: run folder" in running

    assert main(["sweep", str(out), "--summarize"]) == 0
    assert capsys.readouterr().out.startswith(f"sweep summary (partial: 1 of 2 points): {out / 'sweep_summary.md'} (")
    summary = json.loads((out / "sweep_summary.json").read_text())
    assert summary["partial"] == {"finished": 1, "points": 2, "missing": ["lora.r=2"]}
    assert [row["point"] for row in summary["points"]] == ["lora.r=4"]
    assert "**Partial**: 1 of 2 points had finished" in (out / "sweep_summary.md").read_text()
    assert "**Partial**: 1 of 2 points" in section((out / "lora.r=4" / ANALYSIS_FILE).read_text(), "RQ3")


def test_a_pending_point_and_a_folder_that_is_not_a_sweep(smoke_assets, tmp_path, capsys):
    out = tmp_path / "sweep"
    run_sweep(SMOKE, parse_grid(["lora.r=2"]), smoke_overrides(smoke_assets), out)
    record = json.loads((out / "sweep.json").read_text())
    record["grid"]["lora.r"].append(4)  # a point the sweep has not reached
    (out / "sweep.json").write_text(json.dumps(record))
    assert status_lines(out)[1:] == ["lora.r=2  done", "lora.r=4  pending"]
    for not_a_sweep in (tmp_path, SMOKE):  # a folder, and the config the sweep was given
        assert main(["sweep", str(not_a_sweep), "--status"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"hybridcl: error: {not_a_sweep} is not a sweep folder: it has no sweep.json (give ")
    (out / "sweep.json").write_text('{"grid": ')  # cut short
    assert main(["sweep", str(out), "--summarize"]) == 2
    assert capsys.readouterr().err == (
        f"hybridcl: error: {out / 'sweep.json'} is not valid JSON; run the sweep command again to rewrite it\n"
    )


def status_lines(out: Path) -> list[str]:
    from hybridcl.sweep_status import sweep_status

    return sweep_status(out)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--parallel", "2"], "--parallel N runs points as local jobs: give it with --launcher local"),
        (["--slurm", "partition=gpu"], "--slurm key=value sets the resources of Slurm jobs: give it with --launcher"),
        (["--jobs-per", "seed"], "--jobs-per seed runs each seed as its own job: give it with --launcher local or"),
        (["--launcher", "slurm", "--slurm", "gpus=1"], "--slurm 'gpus=1': give key=value with key one of partition,"),
        (["--launcher", "slurm", "--slurm", "time=1h"], "--slurm time=1h: not a whole number"),
        (["--status"], "--status and --summarize take the sweep's folder alone, without --grid or --launcher"),
        (["--status", "--summarize"], "give --status or --summarize, not both"),
    ],
)
def test_launcher_options_that_do_not_fit_are_refused_in_one_line(tmp_path, capsys, args, message):
    status = main(["sweep", str(SMOKE), "--grid", "lora.r=2", *args, "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith(f"hybridcl: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------------------------ Slurm jobs


def test_without_sbatch_the_slurm_launcher_stops_in_one_line_and_writes_nothing(
    smoke_assets, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    sets = [arg for override in smoke_overrides(smoke_assets) for arg in ("--set", override)]
    status = main(
        ["sweep", str(SMOKE), "--grid", "lora.r=2", "--launcher", "slurm", "--out", str(tmp_path / "s"), *sets]
    )
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert err.startswith("hybridcl: error: --launcher slurm needs Slurm's sbatch, and there is none on this machine")
    assert not (tmp_path / "s").exists()


def test_slurm_gets_one_array_of_the_unfinished_jobs_with_the_recorded_resources(
    sweep, smoke_assets, tmp_path, monkeypatch
):
    """sbatch is a script that keeps what it is given and answers as Slurm does: what reaches Slurm is checked,
    not Slurm itself (no Slurm here; the note of issue 23 says what ran on a real one)."""
    scheduler = tmp_path / "bin"
    scheduler.mkdir()
    (scheduler / "sbatch").write_text(
        f'#!/bin/sh\nn=$(ls {tmp_path} | grep -c submitted)\ncp "$1" {tmp_path}/submitted$n.sh\n'
        "echo Submitted batch job $((4242 + n))\n"
    )
    (scheduler / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{scheduler}:{os.environ['PATH']}")
    out = tmp_path / "sweep"
    shutil.copytree(sweep[0] / POINTS[0], out / POINTS[0])  # a finished point: not submitted
    overrides = [*smoke_overrides(smoke_assets), "seeds=2"]
    resources = {"partition": "gpu", "gpus_per_node": 1, "cpus_per_task": 8, "mem": "32G", "account": "lab"}
    args = (SMOKE, parse_grid(GRID), overrides, out)
    assert run_sweep(*args, launcher="slurm", jobs_per="seed", slurm=resources) is None

    script = (tmp_path / "submitted0.sh").read_text()
    for line in ("--array=0-5%6", "--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32G"):
        assert f"#SBATCH {line}\n" in script, line
    assert "#SBATCH --account=lab\n" in script and "#SBATCH --time=1440\n" in script
    assert "#SBATCH --signal=USR2@90\n" in script  # submitit's warning before the time limit: the job requeues
    record = json.loads((out / "sweep.json").read_text())
    assert record["slurm"] == resources and record["jobs_per"] == "seed"
    assert list(record["jobs"]) == [f"{point} seed {seed}" for point in POINTS[1:] for seed in (0, 1)]
    assert [entry["id"] for entry in record["jobs"].values()] == [f"4242_{k}" for k in range(6)]
    lines = status_lines(out)
    assert lines[0] == f"sweep {out}: 1 done, 3 pending (of 4 points)"
    assert lines[2].startswith(f"{POINTS[1]}  pending: job 4242_0 submitted ") and "job 4242_1 submitted" in lines[2]

    shutil.copytree(sweep[0] / POINTS[1], out / POINTS[1], dirs_exist_ok=True)  # finished since
    run_sweep(*args, launcher="slurm", jobs_per="seed")  # the same command again, no --slurm: the recorded ones
    script = (tmp_path / "submitted1.sh").read_text()
    assert "#SBATCH --array=0-3%4\n" in script and "#SBATCH --partition=gpu\n" in script
    assert [entry["id"] for entry in json.loads((out / "sweep.json").read_text())["jobs"].values()][2:] == [
        f"4243_{k}" for k in range(4)
    ]


def predictions(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("predictions/*.jsonl"))}
