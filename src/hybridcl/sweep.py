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
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hybridcl.atomic import write_text
from hybridcl.config import Config, load_config
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
from hybridcl.sweep_jobs import run_local_jobs, run_point

PRIMARY_METRIC = "bleu"

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
        raise ConfigError("a sweep needs at least one --grid key=value,value,...")
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
    parallel: int | None = None,
) -> dict:
    """Run every point (continuing finished ones), then write the summary files; returns the summary.
    `parallel`: run the points as local jobs, that many at once (hybridcl.sweep_jobs); None: one after another
    in this process."""
    points = sweep_points(config_path, grid, overrides)
    out = Path(out) if out is not None else Path("runs") / f"{points[0].config.name}-sweep"
    names = ", ".join(point.name for point in points)
    with log_file(out / SWEEP_LOG, {"sweep": f"{len(points)} point(s) of {config_path}: {names}"}):
        if parallel is None:
            for i, point in enumerate(points, 1):
                logger.info(f"sweep point {i}/{len(points)}: {point.name}")
                run_point(point.config, out / point.name)
        else:
            run_local_jobs(points, out, parallel)
        summary = {"config": str(config_path), "overrides": list(overrides), "grid": grid, **sweep_summary(points, out)}
        write_summary(summary, out)
        from hybridcl.report import load_results, write_report

        for point in points:  # RQ3 of every point's analysis.md now sets it among the sweep's points
            write_report(load_results(out / point.name), out / point.name, plots=False, sweep=summary)
        logger.info(f"sweep summary: {out / SUMMARY_MD} ({SUMMARY_JSON}, {PARETO_PNG})")
    return summary


# -------------------------------------------------------------------------------- the summary


def sweep_summary(points: Sequence[Point], out: Path) -> dict:
    """The metric and every point's summary, from its results file, with the Pareto fronts marked."""
    rows = [point_summary(point, json.loads((out / point.name / RESULTS_FILE).read_text())) for point in points]
    entries = [entry for row in rows for entry in row["strategies"].values()]
    for axis in PARAMETER_AXES:
        front = pareto_front([(entry[axis], _mean(entry)) for entry in entries])
        for k, entry in enumerate(entries):
            entry["pareto"][axis] = k in front
    return {"metric": PRIMARY_METRIC, "points": rows}


def point_summary(point: Point, results: dict) -> dict:
    return {
        "point": point.name,
        "overrides": point.overrides,
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
