"""Experiment tracking (`train.log_with: tensorboard | mlflow | wandb`) through accelerate's trackers.

Everything is written under `<out>/tracking/`: TensorBoard event files in one folder per run, an MLflow
`file:` store in `tracking/mlruns/` (one experiment named after the config), or Weights & Biases run
folders in `tracking/wandb/` (one project named after the config). With `none`, the default, no
tracker is imported and nothing is written.

W&B's mode is W&B's own setting (WANDB_MODE, `wandb offline`): `offline` keeps the runs in their
folders until `wandb sync`, `disabled` writes nothing. `online`, its default, also uploads, which needs
an API key (WANDB_API_KEY, `wandb login`); without one the runs go offline with a line saying how to
sync them later, since W&B would otherwise prompt for a key (or fail without a terminal). With
WANDB_MODE=online set and no key the run stops before it starts.

Each strategy and seed is one tracker run, `<strategy>/seed<k>`, and each strategy's final figures
one more, `<strategy>/all_seeds`. Their hyper-parameters are the config as dotted keys (`train.lr`)
plus `strategy` and, in a seed's run, `seed`. They log:

    train/loss/stage<s>     the loss of every optimizer step of stage s (x: the step, from 1)
    eval/<task>/<metric>    every metric of every task after each stage (x: the stage, 0..S)
    cl/<metric>/<figure>    average, forgetting, forgetting_rate, bwt, fwt: means over seeds (all_seeds run)

Runs rather than name prefixes carry the strategy and seed because both UIs compare runs: TensorBoard
draws one tag of every run in one chart (each strategy's python BLEU over the stages), MLflow's and
W&B's run tables have a column per hyper-parameter and metric. W&B's own step only increases (it drops
a value logged at a smaller one), so there the x values are metrics too, `train_step` and `stage`, the
x axes of `train/*` and `eval/*` (W&B's define_metric).

Under torchrun accelerate starts the trackers on the main process only; the other processes' calls
do nothing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from accelerate import Accelerator
from accelerate.utils import is_mlflow_available, is_tensorboard_available, is_wandb_available

from hybridcl.errors import UserError

logger = logging.getLogger(__name__)

CL_FIGURES = ("average", "forgetting", "forgetting_rate", "bwt", "fwt")
PACKAGES = {
    "tensorboard": ("tensorboard", is_tensorboard_available),
    "mlflow": ("mlflow-skinny", is_mlflow_available),
    "wandb": ("wandb", is_wandb_available),
}
WANDB_AXES = {"train/*": "train_step", "eval/*": "stage"}  # metric -> its x axis, in place of W&B's step


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
        self.wandb_settings = {}
        if self.kind == "mlflow" and accelerator.is_main_process:
            use_file_store(Path(accelerator.logging_dir) / "mlruns")
        if self.kind == "wandb" and accelerator.is_main_process:
            self.wandb_settings = wandb_settings(Path(accelerator.logging_dir))

    @contextmanager
    def run(self, name: str, **params) -> Iterator[None]:
        """One tracker run around the block; its hyper-parameters are `params`, then the config's."""
        if self.kind == "none":
            yield
            return
        project = name if self.kind == "tensorboard" else self.experiment  # TensorBoard: the run's folder
        config = flatten(params) | self.params
        init_kwargs = {"mlflow": {"run_name": name}, "wandb": {"name": name, **self.wandb_settings}}
        self.accelerator.init_trackers(project, config=config, init_kwargs=init_kwargs)
        if self.kind == "wandb" and self.accelerator.is_main_process:
            run = self.accelerator.get_tracker("wandb", unwrap=True)
            for metrics, axis in WANDB_AXES.items():
                run.define_metric(metrics, step_metric=axis)
        try:
            yield
        finally:
            for tracker in self.accelerator.trackers:
                tracker.finish()
            self.accelerator.trackers.clear()  # so that the next init_trackers starts the next run alone

    def log_losses(self, stage: int, first_step: int, losses: list[float]) -> None:
        for step, loss in enumerate(losses, start=first_step):
            self._log({f"train/loss/stage{stage}": loss}, "train_step", step)

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
        self._log(scores, "stage", record["stage"])

    def _log(self, values: dict, axis: str, step: int) -> None:
        """`values` at x = `step`: W&B's x is the metric `axis` (see WANDB_AXES), the others' the step."""
        if self.kind == "wandb":
            self.accelerator.log(values | {axis: step})
        else:
            self.accelerator.log(values, step=step)

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


def wandb_settings(folder: Path) -> dict:
    """wandb.init's arguments besides the run's name: the runs' folder and the mode."""
    folder.mkdir(parents=True, exist_ok=True)  # W&B makes it too, but first warns that it is missing
    return {"dir": str(folder), "mode": wandb_mode(folder / "wandb")}


def wandb_mode(runs: Path) -> str:
    """W&B's configured mode, but offline when that is online and no API key is configured (see above)."""
    import wandb

    mode = wandb.setup().settings.mode
    if mode in ("offline", "dryrun", "disabled") or wandb.login(prompt=False, verify=False):
        return mode
    if os.environ.get("WANDB_MODE") == "online":
        raise UserError("WANDB_MODE=online needs a W&B API key: run `wandb login` or set WANDB_API_KEY")
    wandb.setup(wandb.Settings(mode="offline"))  # the session too, so that W&B's usage analytics stay off
    logger.info(
        f"W&B: no API key, so the runs stay offline in {runs}; upload them with `wandb sync {runs}/offline-run-*`"
    )
    return "offline"


def use_file_store(folder: Path) -> None:
    """MLflow's local file store, no server. MLflow 3 refuses that store unless allowed (it suggests a
    database, which mlflow-skinny cannot open)."""
    import mlflow

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    mlflow.set_tracking_uri(folder.resolve().as_uri())
