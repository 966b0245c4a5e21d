"""`hybridcl sweep`: one continual run per point of a grid of config values, then one summary (RQ3).

    hybridcl sweep configs/local.yaml --grid lora.r=4,8,16,32 --grid layer.count=0,1,2 --seeds 3

The points are the cartesian product of the grids, in the order given. Each is its own run folder,
`<out>/<key>=<value>,<key>=<value>/` (e.g. `lora.r=4,layer.count=0/`), run by `ContinualRun`: a sweep
killed and started again continues, restoring every finished stage instead of training it again.
Every point's config is built and checked before anything runs, so a value the config refuses (an
unknown key, `lora.r=0`, `layer.count=0` with a strategy that trains only layers) stops the sweep
up front, naming the point. Then, from each point's results file, `<out>/`:

- `sweep_summary.json`: per point its overrides and, per strategy, the trainable parameters (of the
  largest stage, as the results' efficiency figures count them), the parameters stored for all tasks,
  and the average score A of the primary metric (mean, std and 95% CI over seeds), with whether the
  strategy at that point is on the Pareto front of A against each parameter count;
- `sweep_summary.md`: the same as a table;
- `sweep_pareto.png`: A against trainable and against stored parameters (log x, 95% CI bars), the
  Pareto fronts marked.

The points run in this process, or as jobs (`--launcher local|slurm`, hybridcl.sweep_jobs), in which case
the job that finishes the last point writes the summary. `<out>/sweep.json` records what the sweep is and
how it runs, for `hybridcl sweep OUT --status` (hybridcl.sweep_status), `--summarize` (the summary of the
points finished so far, marked partial) and the next submission.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from hybridcl import folder_lock
from hybridcl.atomic import write_text
from hybridcl.config import Config, load_config
from hybridcl.errors import UserError
from hybridcl.logs import SWEEP_LOG, log_file
from hybridcl.report.sweep_summary import (
    PARAMETER_AXES,
    PARETO_PNG,
    SUMMARY_JSON,
    SUMMARY_MD,
    plot_pareto,
    summary_markdown,
)
from hybridcl.run_files import RESULTS_FILE
from hybridcl.settings import ConfigError
from hybridcl.sweep_jobs import (
    Job,
    queued_slurm_jobs,
    require_slurm,
    run_local_jobs,
    run_point,
    submit_slurm_array,
)

PRIMARY_METRIC = "bleu"
SWEEP_RECORD = "sweep.json"
SUMMARY_LOCK = ".summary.lock"

logger = logging.getLogger(__name__)

Grid = dict[str, list[Any]]


@dataclass(frozen=True)
class Point:
    overrides: dict[str, Any]  # grid key -> this point's value, in grid order
    config: Config

    @property
    def name(self) -> str:
        return point_name(self.overrides)


def point_name(overrides: dict[str, Any]) -> str:
    """The point's folder name: `key=value` pairs joined by commas."""
    text = ",".join(f"{key}={_value_text(value)}" for key, value in overrides.items())
    return text.replace("/", "_").replace("\\", "_")


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ",".join(_value_text(v) for v in value) + "]"
    return json.dumps(value)


# --------------------------------------------------------------------------------- the points


def parse_grid(texts: Sequence[str]) -> Grid:
    """`["lora.r=4,8", "layer.count=0,1"]` -> {"lora.r": [4, 8], "layer.count": [0, 1]}; values read as YAML."""
    grid: Grid = {}
    for text in texts:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--grid {text!r} is not of the form key=value,value,...")
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice")
        try:
            values = yaml.safe_load(f"[{raw}]")
        except yaml.YAMLError:
            raise ConfigError(f"--grid {text!r}: the values are not valid YAML") from None
        if len({json.dumps(v) for v in values}) != len(values):
            raise ConfigError(f"--grid {key}: repeated values in {values}")
        grid[key] = values
    if not grid:
        raise ConfigError(
            "a sweep needs at least one --grid key=value,value,... (or, of its folder, --status / --summarize)"
        )
    return grid


def sweep_points(config_path: str | Path, grid: Grid, overrides: Sequence[str] = ()) -> list[Point]:
    """Every point of the grid with its validated config; the first invalid point raises ConfigError."""
    points = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        point_overrides = [f"{key}={json.dumps(value)}" for key, value in point.items()]
        try:
            config = load_config(config_path, [*overrides, *point_overrides])
        except ConfigError as error:
            raise ConfigError(f"sweep point {point_name(point)}: {error}") from None
        points.append(Point(point, config))
    return points


def run_sweep(
    config_path: str | Path,
    grid: Grid,
    overrides: Sequence[str] = (),
    out: str | Path | None = None,
    launcher: str = "inline",
    parallel: int = 1,
    jobs_per: str = "point",
    slurm: dict | None = None,
) -> dict | None:
    """Run (or submit) every unfinished point, then write the summary files; returns the summary (None when the
    points were submitted to Slurm: the job that finishes the last point writes it). `launcher`: `inline` runs the points
    one after another in this process; `local` and `slurm` run them as jobs (hybridcl.sweep_jobs), one per point
    or, with `jobs_per="seed"`, per (point, seed)."""
    points = sweep_points(config_path, grid, overrides)
    if launcher == "slurm":
        require_slurm()  # before anything is written
    out = Path(out) if out is not None else Path("runs") / f"{points[0].config.name}-sweep"
    record = write_record(out, config_path, grid, overrides, launcher, jobs_per, slurm)
    names = ", ".join(point.name for point in points)
    with log_file(out / SWEEP_LOG, {"sweep": f"{len(points)} point(s) of {config_path}: {names}"}):
        if launcher == "inline":
            for i, point in enumerate(points, 1):
                logger.info(f"sweep point {i}/{len(points)}: {point.name}")
                run_point(point.config, out / point.name)
            return finish_sweep(out)
        build_offline_assets_once(points)  # not once per job, side by side
        jobs = unfinished_jobs(points, out, jobs_per)
        if launcher == "local":
            run_local_jobs(jobs, parallel)
            return finish_sweep(out)
        submit_to_slurm(jobs, out, record)
        return None


def build_offline_assets_once(points: Sequence[Point]) -> None:
    """Once built, a point's assets are found in place: for the next point that names them it is a file check."""
    from hybridcl.offline_assets import build_offline_assets  # the corpus miner and pre-training: torch

    for point in points:
        if point.config.offline.build:
            build_offline_assets(point.config)


def unfinished_jobs(points: Sequence[Point], out: Path, jobs_per: str) -> list[Job]:
    """A job per point not finished, or per seed of it not finished (a point whose every seed is done but that
    was stopped before its report was written: one job, for its first seed, which writes it)."""
    from hybridcl.continual import finished_seeds

    jobs = []
    for point in points:
        folder = out / point.name
        if point_finished(folder):
            continue
        if jobs_per == "point":
            jobs.append(Job(point.name, point.config, folder))
            continue
        done = finished_seeds(point.config, folder)
        seeds = [seed for seed in point.config.seed_values if seed not in done]
        jobs += [Job(point.name, point.config, folder, seed) for seed in seeds or point.config.seed_values[:1]]
    return jobs


def submit_to_slurm(jobs: Sequence[Job], out: Path, record: dict) -> None:
    """Submit the jobs that Slurm does not already have queued or running, as one array; record their ids."""
    queued = queued_slurm_jobs([entry["id"] for entry in record["jobs"].values()])
    jobs = [job for job in jobs if record["jobs"].get(job.name, {}).get("id") not in queued]
    if not jobs:
        logger.info(f"nothing to submit: every point is finished or queued ({out / SWEEP_RECORD})")
        return
    submitted = submit_slurm_array(jobs, out, record["slurm"], functools.partial(finish_sweep, out))
    at = _now()
    record["jobs"].update({name: {"id": job_id, "submitted": at} for name, job_id in submitted.items()})
    save_record(out, record)
    ids = list(submitted.values())
    logger.info(
        f"submitted {len(jobs)} job(s) to Slurm ({ids[0]} .. {ids[-1]}); watch them with `hybridcl sweep {out} --status`; "
        "the last to finish writes the summary"
    )


# ------------------------------------------------------------------------------ the sweep's record


def write_record(
    out: Path, config_path, grid: Grid, overrides: Sequence[str], launcher: str, jobs_per: str, slurm: dict | None
) -> dict:
    """`sweep.json`: what the sweep is (its config, grid, overrides), how it runs, and the Slurm jobs it
    submitted, so that `--status`, `--summarize` and the last job find the points, and the same command run
    again reuses the Slurm resources given before (any `--slurm` given now replaces them)."""
    previous = read_record(out) if (out / SWEEP_RECORD).is_file() else {}
    record = {
        "config": str(Path(config_path).resolve()),
        "overrides": list(overrides),
        "grid": grid,
        "launcher": launcher,
        "jobs_per": jobs_per,
        "slurm": slurm if slurm else previous.get("slurm", {}),
        "jobs": previous.get("jobs", {}),
    }
    save_record(out, record)
    return record


def save_record(out: Path, record: dict) -> None:
    write_text(out / SWEEP_RECORD, json.dumps(record, indent=1) + "\n")


def read_record(out: str | Path) -> dict:
    path = Path(out) / SWEEP_RECORD
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):  # no sweep.json, or a file (a config) given
        raise UserError(
            f"{out} is not a sweep folder: it has no {SWEEP_RECORD} (give the sweep's --out; a sweep folder from "
            "before --status gets one when its command is run again)"
        ) from None
    except ValueError:
        raise UserError(f"{path} is not valid JSON; run the sweep command again to rewrite it") from None


def grid_points(grid: Grid) -> list[dict[str, Any]]:
    """Every point's overrides, in the sweep's order."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def point_finished(folder: Path) -> bool:
    try:
        return json.loads((folder / RESULTS_FILE).read_text())["finished"] is True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------- finishing: summary and RQ3


def finish_sweep(out: str | Path, partial: bool = False) -> dict | None:
    """Once every point has finished (or now, with `partial`): the summary files and every finished point's
    RQ3 set among the sweep's points. Returns the summary, None while points are unfinished. One writer at a
    time: the last two jobs may end together."""
    from hybridcl.report import load_results, write_report

    out = Path(out)
    record = read_record(out)
    points = grid_points(record["grid"])
    finished = [point for point in points if point_finished(out / point_name(point))]
    if not finished or (len(finished) < len(points) and not partial):
        return None
    with folder_lock.exclusive(out / SUMMARY_LOCK):
        summary = {
            "config": record["config"],
            "overrides": record["overrides"],
            "grid": record["grid"],
            **sweep_summary(finished, out),
            "partial": None if len(finished) == len(points) else partial_record(points, finished),
        }
        write_summary(summary, out)
        for point in finished:
            folder = out / point_name(point)
            write_report(load_results(folder), folder, plots=False, sweep=summary)
    part = summary["partial"]
    of = f" (partial: {part['finished']} of {part['points']} points)" if part else ""
    logger.info(f"sweep summary{of}: {out / SUMMARY_MD} ({SUMMARY_JSON}, {PARETO_PNG})")
    return summary


def partial_record(points: Sequence[dict], finished: Sequence[dict]) -> dict:
    missing = [point_name(point) for point in points if point not in finished]
    return {"finished": len(finished), "points": len(points), "missing": missing}


# -------------------------------------------------------------------------------- the summary


def sweep_summary(points: Sequence[dict], out: Path) -> dict:
    """The metric and every point's summary (points: their overrides), from its results file, with the Pareto
    fronts marked."""
    rows = [point_summary(point, json.loads((out / point_name(point) / RESULTS_FILE).read_text())) for point in points]
    entries = [entry for row in rows for entry in row["strategies"].values()]
    for axis in PARAMETER_AXES:
        front = pareto_front([(entry[axis], _mean(entry)) for entry in entries])
        for k, entry in enumerate(entries):
            entry["pareto"][axis] = k in front
    return {"metric": PRIMARY_METRIC, "points": rows}


def point_summary(overrides: dict[str, Any], results: dict) -> dict:
    return {
        "point": point_name(overrides),
        "overrides": overrides,
        "finished": results["finished"],
        "seeds": results["seeds"],
        "strategies": {name: strategy_summary(entry) for name, entry in results["strategies"].items()},
    }


def strategy_summary(entry: dict) -> dict:
    average = entry["cl"][PRIMARY_METRIC]["average"]
    return {
        "trainable": max(stage["trainable"] for stage in entry["params"]["per_stage"]),
        "stored": entry["params"]["stored"],
        "average": None if average is None else {key: average[key] for key in ("mean", "std", "ci95", "n")},
        "pareto": {},
    }


def _mean(entry: dict) -> float | None:
    return entry["average"]["mean"] if entry["average"] else None


def pareto_front(pairs: Sequence[tuple[int, float | None]]) -> set[int]:
    """Indices of the (parameters, score) pairs no other pair dominates (as few parameters or fewer and as
    high a score or higher, strictly better in one); pairs without a score are on no front."""
    scored = [(k, x, y) for k, (x, y) in enumerate(pairs) if y is not None]
    return {k for k, x, y in scored if not any(x2 <= x and y2 >= y and (x2 < x or y2 > y) for _, x2, y2 in scored)}


def write_summary(summary: dict, out: Path) -> None:
    write_text(out / SUMMARY_JSON, json.dumps(summary, indent=1) + "\n")
    write_text(out / SUMMARY_MD, summary_markdown(summary))
    plot_pareto(summary, out / PARETO_PNG)
