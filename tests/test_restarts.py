"""Several seeds end to end, and fault injection: `hybridcl run` SIGKILLed at named points
(`HYBRIDCL_KILL_AT`, hybridcl.faults) and started again finishes with what an uninterrupted run gives.

The run is the smoke config with two seeds, as real processes (`python -m hybridcl.cli run`). One
chain of restarts visits every kill point in turn; each restart continues where the last one died.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scipy.stats import t

from hybridcl.run_files import RESULTS_FILE
from smoke import SMOKE

SEEDS = 2
# (kill point, stage.json files finished once the killed process is gone)
CHAIN = [
    ("train step#2", ["stage0/seed0"]),  # during task_specific stage 1 training
    ("evaluated#1", ["stage0/seed0"]),  # between that stage's two evaluations
    ("write stage.json#1", ["stage0/seed0"]),  # its stage.json complete in a temp file, not yet renamed
    (f"write {RESULTS_FILE}#2", ["stage0/seed0", "experiment_1_results/seed0/stage1"]),
    ("seed done#1", ["experiment_2_results/seed0/stage2"]),  # between seed 0 and seed 1
    ("write analysis.md#1", ["experiment_2_results/seed1/stage2"]),  # every stage done, the report not
    ("write accuracy_matrix_bleu.png#1", ["experiment_2_results/seed1/stage2"]),
    (f"write {RESULTS_FILE}#2", ["experiment_2_results/seed1/stage2"]),  # the final results file
]


def hybridcl_run(assets: dict, out: Path, kill_at: str | None = None) -> subprocess.CompletedProcess:
    command, env = run_command(assets, out, kill_at)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def run_command(assets: dict, out: Path, kill_at: str | None = None) -> tuple[list[str], dict]:
    """`python -m hybridcl.cli run` of the smoke config with SEEDS seeds, and its environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYBRIDCL_KILL_AT", None)
    if kill_at:
        env["HYBRIDCL_KILL_AT"] = kill_at
    command = [
        sys.executable,
        "-m",
        "hybridcl.cli",
        "run",
        str(SMOKE),
        "--out",
        str(out),
        "--seeds",
        str(SEEDS),
        "--set",
        f"data.source={assets['corpus']}",
        "--set",
        f"model.name={assets['base']}",
        "--set",
        f"data.cache_dir={assets['cache']}",
    ]
    return command, env


@pytest.fixture(scope="module")
def uninterrupted(smoke_assets, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    finished = hybridcl_run(smoke_assets, out)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return out


def results(out: Path) -> dict:
    return json.loads((out / RESULTS_FILE).read_text())


def summaries(tree, path: str = ""):
    """(path, summary) for every {mean, std, ci95, n, values} dict in a results tree."""
    if isinstance(tree, dict) and {"mean", "std", "ci95", "n", "values"} <= set(tree):
        yield path, tree
    elif isinstance(tree, dict):
        for key, value in tree.items():
            yield from summaries(value, f"{path}.{key}")
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from summaries(value, f"{path}[{i}]")


def test_two_seeds_run_to_the_end_and_every_summary_matches_its_values(uninterrupted):
    saved = results(uninterrupted)
    assert saved["finished"] is True and saved["seeds"] == [0, 1]
    found = list(summaries(saved["strategies"]))
    assert len(found) > 100
    for path, summary in found:
        values = [v for v in summary["values"] if v is not None]
        assert len(summary["values"]) == SEEDS and summary["n"] == len(values) >= 1, path
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
        half = t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values)) if len(values) > 1 else 0.0
        assert summary["mean"] == pytest.approx(mean, abs=1e-12), path
        assert summary["std"] == pytest.approx(std, abs=1e-12), path
        assert summary["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-9), path
    bleu = saved["strategies"]["task_specific"]["matrices_summary"]["bleu"]
    assert all(cell["n"] == SEEDS for row in bleu for cell in row)
    trained = saved["strategies"]["shared_layer"]["cost"]["stages"][2]["train"]["wall_time_s"]
    assert trained["n"] == SEEDS and all(value > 0 for value in trained["values"])


def stage_files(out: Path) -> dict[str, str]:
    """Every prediction file and every stage's scores, by path: what must not depend on restarts."""
    found = {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("predictions/*.jsonl"))}
    for path in sorted(out.rglob("stage.json")):
        stage = json.loads(path.read_text())
        scores = {task: entry["scores"] for task, entry in stage["eval"].items()}
        found[str(path.relative_to(out))] = json.dumps(scores, sort_keys=True)
    return found


def test_a_run_killed_anywhere_restarts_and_finishes_as_if_never_killed(smoke_assets, uninterrupted, tmp_path):
    out = tmp_path / "run"
    created = None
    for k, (kill_at, finished_stages) in enumerate(CHAIN):
        killed = hybridcl_run(smoke_assets, out, kill_at)
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr[-3000:])
        assert ("took over the run folder's lock from pid" in killed.stdout) == (k > 0), kill_at  # its killed holder
        for stage in finished_stages:
            assert (out / stage / "stage.json").is_file(), (kill_at, stage)
        saved = results(out)
        assert saved["finished"] is False, kill_at  # never finished before the report is complete
        created = created or saved["created"]
        assert saved["created"] == created, kill_at
    assert list(out.rglob("*.tmp")), "the kills inside writes left temporary files for the restart to clear"

    restarted = hybridcl_run(smoke_assets, out)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "removed 1 temporary file" in restarted.stdout
    assert "took over the run folder's lock from pid" in restarted.stdout
    assert "every stage finished before" in restarted.stdout and "trained" not in restarted.stdout
    assert not list(out.rglob("*.tmp"))
    assert results(out)["created"] == created
    assert (out / "analysis.md").is_file() and list((out / "plots").glob("accuracy_matrix_*.png"))
    assert_finished_as(out, uninterrupted)


def assert_finished_as(out: Path, uninterrupted: Path) -> None:
    """The run in `out` finished with the uninterrupted run's matrices, CL figures, predictions and scores."""
    saved, reference = results(out), results(uninterrupted)
    assert saved["finished"] is True
    for name, entry in reference["strategies"].items():
        assert saved["strategies"][name]["matrices_summary"] == entry["matrices_summary"], name
        assert saved["strategies"][name]["cl"] == entry["cl"], name
    assert stage_files(out) == stage_files(uninterrupted)


def test_two_runs_started_at_once_on_one_folder_one_trains_and_the_other_is_refused(
    smoke_assets, uninterrupted, tmp_path
):
    out = tmp_path / "run"
    command, env = run_command(smoke_assets, out)
    pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    both = [subprocess.Popen(command, env=env, **pipes) for _ in range(2)]
    ended = [(process.communicate(timeout=600), process.returncode) for process in both]
    assert sorted(code for _, code in ended) == [0, 2], [err[-3000:] for (_, err), _ in ended]
    (_, refused), _ = next(item for item in ended if item[1] == 2)
    assert refused.strip().splitlines()[-1].startswith(f"hybridcl: error: run folder {out} is in use by pid ")
    assert (out / "run.log").read_text().count("config.yaml sha256") == 1  # the refused one wrote no line there
    assert_finished_as(out, uninterrupted)


# ------------------------------------------------------------------------------ a sweep's jobs


def sweep_command(assets: dict, out: Path, *launch: str) -> tuple[list[str], dict]:
    """`hybridcl sweep` of one point, lora.r=4: the smoke config with SEEDS seeds, what `uninterrupted` ran."""
    command, env = run_command(assets, out)
    command[3] = "sweep"
    return [*command, "--grid", "lora.r=4", *launch], env


def test_the_seeds_of_a_point_as_jobs_side_by_side_write_what_one_run_writes(smoke_assets, uninterrupted, tmp_path):
    """--jobs-per seed: both seeds train at once and write the point's one results file in turns."""
    out = tmp_path / "sweep"
    command, env = sweep_command(smoke_assets, out, "--launcher", "local", "--parallel", "2", "--jobs-per", "seed")
    swept = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert swept.returncode == 0, swept.stderr[-3000:]
    point = out / "lora.r=4"
    assert_finished_as(point, uninterrupted)
    consoles = sorted(path.read_text() for path in (point / "jobs").glob("*_log.out"))
    assert len(consoles) == 2 and all("stage 2 seed" in console for console in consoles)
    assert sorted(line.split()[-1] for line in (point / "run.log").read_text().splitlines() if "seed job:" in line) == [
        "0",
        "1",
    ]
    assert json.loads((out / "sweep_summary.json").read_text())["points"][0]["seeds"] == [0, 1]


def test_a_job_the_scheduler_ends_continues_when_the_sweep_is_run_again(smoke_assets, uninterrupted, tmp_path):
    """As Slurm ends a job: SIGTERM (submitit's job lets it pass: the run goes on through the grace time), then
    SIGKILL. The same command again continues the point from its finished stages."""
    from hybridcl.folder_lock import live_holders
    from hybridcl.sweep_status import sweep_status

    out = tmp_path / "sweep"
    point = out / "lora.r=4"
    command, env = sweep_command(smoke_assets, out, "--launcher", "local")
    sweep = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_trained = point / "experiment_1_results" / "seed0" / "stage1" / "stage.json"
    while not first_trained.is_file():
        assert sweep.poll() is None, sweep.communicate()[1][-3000:]
        time.sleep(0.05)
    job = live_holders(point)["folder"]["pid"]
    os.kill(job, signal.SIGTERM)
    time.sleep(1.0)
    os.kill(job, 0)  # alive through the grace time
    os.kill(job, signal.SIGKILL)
    _, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 2 and "1 of 1 sweep job(s) failed; lora.r=4: ended without a result (killed?)" in err
    assert results(point)["finished"] is False and not (out / "sweep_summary.json").exists()
    assert sweep_status(out)[1].startswith("lora.r=4  pending: ")  # stopped, nothing running, no error of its own

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "took over the run folder's lock from pid" in (point / "run.log").read_text()
    continued = (point / "run.log").read_text().split("took over the run folder's lock")[1]
    assert (
        "task_specific stage 1 seed 0: restored" in continued
        or "task_specific seed 0: every stage finished" in continued
    )
    assert_finished_as(point, uninterrupted)
    assert (out / "sweep_summary.json").is_file() and sweep_status(out)[1] == "lora.r=4  done"
