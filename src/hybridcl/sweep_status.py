"""`hybridcl sweep FOLDER --status`: one line per point of a sweep, read from its folder alone (no scheduler
query), so it works the same for inline, local and Slurm sweeps, and from any machine that sees the folder.

    done     its results file says finished
    running  a live process holds its folder (or a seed of it): host, pid, job id, since when, and the stage
             its run.log last started
    failed   a job of it ended on an error: the error's last line and the job's log
    pending  none of these: not started, queued, or stopped (a resubmission continues its finished stages)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from hybridcl.folder_lock import describe, live_holders
from hybridcl.logs import RUN_LOG
from hybridcl.sweep import grid_points, point_finished, point_name, read_record
from hybridcl.sweep_jobs import JOBS_DIR

STAGE_START = re.compile(r"hybridcl\.continual: (.+ stage \d+ seed (\d+)): start$")
LOG_TAIL_BYTES = 256 * 1024


def sweep_status(out: str | Path) -> list[str]:
    """A headline, then `<point>  <state>: <details>` per point."""
    out = Path(out)
    record = read_record(out)
    names = [point_name(point) for point in grid_points(record["grid"])]
    states = [point_state(out / name, record["jobs"]) for name in names]
    counts = Counter(state.split(":")[0] for state in states)
    head = ", ".join(f"{counts[kind]} {kind}" for kind in ("done", "running", "failed", "pending") if counts[kind])
    width = max(map(len, names))
    return [f"sweep {out}: {head} (of {len(names)} points)"] + [
        f"{name:<{width}}  {state}" for name, state in zip(names, states)
    ]


def point_state(folder: Path, jobs: dict) -> str:
    if point_finished(folder):
        return "done"
    failures = [_failure_text(path) for path in sorted((folder / JOBS_DIR).glob("failed*.json"))]
    holders = live_holders(folder)
    if holders:
        stages = started_stages(folder / RUN_LOG)
        running = [
            f"{'' if what == 'folder' else what + ' '}{describe(who)}{_at(stages, what)}"
            for what, who in holders.items()
        ]
        return "running: " + "; ".join(running + [f"failed: {text}" for text in failures])
    if failures:
        return "failed: " + "; ".join(failures)
    submitted = [
        f"job {entry['id']} submitted {entry['submitted']}" for name, entry in jobs.items() if _of(name, folder)
    ]
    stages = sum(1 for _ in folder.rglob("stage.json")) if folder.is_dir() else 0
    details = submitted + ([f"{stages} stage(s) finished"] if stages else [])
    return "pending" + (": " + "; ".join(details) if details else "")


def started_stages(run_log: Path) -> dict[str, str]:
    """Seed -> the last stage run.log says was started for it."""
    if not run_log.is_file():
        return {}
    with run_log.open("rb") as file:
        file.seek(max(0, run_log.stat().st_size - LOG_TAIL_BYTES))
        lines = file.read().decode("utf-8", errors="replace").splitlines()
    stages = {}
    for line in lines:
        match = STAGE_START.search(line)
        if match:
            stages[match.group(2)] = match.group(1)
    return stages


def _at(stages: dict[str, str], what: str) -> str:
    if what == "folder":
        stage = list(stages.values())[-1] if stages else None
    else:
        stage = stages.get(what.removeprefix("seed "))
    return f", at {stage}" if stage else ""


def _failure_text(path: Path) -> str:
    try:
        failure = json.loads(path.read_text())
        seed = "" if failure.get("seed") is None else f"seed {failure['seed']}: "
        return f"{seed}{failure['error']} (log {failure['log']})"
    except (OSError, ValueError, KeyError):
        return f"(unreadable record {path})"


def _of(job_name: str, folder: Path) -> bool:
    return job_name == folder.name or job_name.startswith(f"{folder.name} seed ")
