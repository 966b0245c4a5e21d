"""Experiment tracking (`train.log_with: tensorboard | mlflow`) through accelerate's trackers.

Everything is written offline under `<out>/tracking/`: TensorBoard event files in one folder per run,
or an MLflow `file:` store in `tracking/mlruns/` (one experiment named after the config). With
`none`, the default, no tracker is imported and nothing is written.

Each strategy and seed is one tracker run, `<strategy>/seed<k>`, and each strategy's final figures
one more, `<strategy>/all_seeds`. Their hyper-parameters are the config as dotted keys (`train.lr`)
plus `strategy` and, in a seed's run, `seed`. They log:

    train/loss/stage<s>     the loss of every optimizer step of stage s (x: the step, from 1)
    eval/<task>/<metric>    every metric of every task after each stage (x: the stage, 0..S)
    cl/<metric>/<figure>    average, forgetting, forgetting_rate, bwt, fwt: means over seeds (all_seeds run)

Runs rather than name prefixes carry the strategy and seed because both UIs compare runs: TensorBoard
draws one tag of every run in one chart (each strategy's python BLEU over the stages), MLflow's run
table has a column per hyper-parameter and metric.

Under torchrun accelerate starts the trackers on the main process only; the other processes' calls
do nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import is_mlflow_available, is_tensorboard_available

from hybridcl.errors import UserError

CL_FIGURES = ("average", "forgetting", "forgetting_rate", "bwt", "fwt")
PACKAGES = {"tensorboard": ("tensorboard", is_tensorboard_available), "mlflow": ("mlflow-skinny", is_mlflow_available)}


def check_installed(log_with: str) -> None:
    """accelerate leaves out a tracker whose package is missing, with a warning only: fail before the run instead."""
    if log_with == "none":
        return
    package, available = PACKAGES[log_with]
    if not available():
        raise UserError(f"train.log_with={log_with} needs the {package} package: pip install -e '.[tracking]'")


class Tracker:
    """The runner's tracking calls. Every process makes them; only the main one's trackers write."""

    def __init__(self, accelerator: Accelerator, config: dict):
        """`config`: the resolved config as plain values; the accelerator comes from make_accelerator."""
        self.accelerator = accelerator
        self.kind = config["train"]["log_with"]
        self.experiment = config["name"]
        self.params = flatten(config)
        if self.kind == "mlflow" and accelerator.is_main_process:
            use_file_store(Path(accelerator.logging_dir) / "mlruns")

    @contextmanager
    def run(self, name: str, **params) -> Iterator[None]:
        """One tracker run around the block; its hyper-parameters are `params`, then the config's."""
        if self.kind == "none":
            yield
            return
        project = self.experiment if self.kind == "mlflow" else name  # TensorBoard: the run's folder
        config = flatten(params) | self.params
        self.accelerator.init_trackers(project, config=config, init_kwargs={"mlflow": {"run_name": name}})
        try:
            yield
        finally:
            for tracker in self.accelerator.trackers:
                tracker.finish()
            self.accelerator.trackers.clear()  # so that the next init_trackers starts the next run alone

    def log_losses(self, stage: int, first_step: int, losses: list[float]) -> None:
        for step, loss in enumerate(losses, start=first_step):
            self.accelerator.log({f"train/loss/stage{stage}": loss}, step=step)

    def log_stage(self, record: dict, losses: bool) -> None:
        """A finished stage from its record (stage.json): the evaluation, and the losses unless they
        were logged as the stage trained."""
        if self.kind == "none":
            return
        if losses and record["train"]:
            self.log_losses(record["stage"], 1, record["train"]["losses"])
        scores = {
            f"eval/{task}/{metric}": value
            for task, evaluation in record["eval"].items()
            for metric, value in evaluation["scores"].items()
            if value is not None
        }
        self.accelerator.log(scores, step=record["stage"])

    def log_cl_figures(self, results: dict) -> None:
        """Each strategy's final CL figures (the results file's means over seeds), a run per strategy."""
        for name, entry in results["strategies"].items():
            figures = {
                f"cl/{metric}/{figure}": summary["mean"]
                for metric, summaries in entry["cl"].items()
                for figure, summary in summaries.items()
                if figure in CL_FIGURES and summary is not None and summary["mean"] is not None
            }
            with self.run(f"{name}/all_seeds", strategy=name):
                self.accelerator.log(figures)


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested sections -> dotted keys; lists as JSON text (hyper-parameters are single values)."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


def use_file_store(folder: Path) -> None:
    """MLflow's local file store, no server. MLflow 3 refuses that store unless allowed (it suggests a
    database, which mlflow-skinny cannot open)."""
    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(folder.resolve().as_uri())
