"""train.log_with: a smoke run's tracker files, read back with the tracker's own reader, hold the run's
figures: each step's loss and each stage's evaluation as stage.json has them, the config as
hyper-parameters, and the CL figures as the results file has them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

import psutil
import pytest
import wandb
import yaml
from mlflow import MlflowClient
from pytest import approx
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

import hybridcl.tracking as tracking
from hybridcl.config import load_config
from hybridcl.continual import ContinualRun
from hybridcl.errors import UserError
from hybridcl.run_files import RESULTS_FILE
from hybridcl.settings import ConfigError, TrainConfig
from hybridcl.train import make_accelerator
from smoke import smoke_config

# shared_layer copies its stage 1 from task_specific: those losses come from stage.json, not from training.
STRATEGIES = ("task_specific", "shared_layer")
CL_FIGURES = ("average", "forgetting", "forgetting_rate", "bwt", "fwt")


class TensorBoardLog:
    """A run is a folder of event files; accelerate writes its hyper-parameters to a sub-folder."""

    def __init__(self, folder: Path):
        self.folder = folder

    def runs(self) -> list[str]:
        return sorted(str(path.parent.relative_to(self.folder)) for path in self.folder.glob("*/*/events.*"))

    def scalars(self, run: str) -> dict[str, list[tuple[int, float]]]:
        events = EventAccumulator(str(self.folder / run)).Reload()
        return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}

    def params(self, run: str) -> dict:
        [path] = (self.folder / run).glob("*/events.*")
        content = EventAccumulator(str(path.parent)).Reload().PluginTagToContent("hparams")
        hparams = HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info.hparams
        return {key: getattr(value, value.WhichOneof("kind")) for key, value in hparams.items()}

    @staticmethod
    def param(value):
        """How a hyper-parameter reads back: numbers (bools too) as floats."""
        return float(value) if isinstance(value, (bool, int, float)) else value


class MlflowLog:
    """Runs of the experiment named after the config, in the file store (which the run allowed MLflow to open)."""

    def __init__(self, folder: Path):
        self.client = MlflowClient((folder / "mlruns").as_uri())
        experiment = self.client.get_experiment_by_name("smoke")
        self.by_name = {run.info.run_name: run for run in self.client.search_runs([experiment.experiment_id])}

    def runs(self) -> list[str]:
        return sorted(self.by_name)

    def scalars(self, run: str) -> dict[str, list[tuple[int, float]]]:
        run_id = self.by_name[run].info.run_id
        histories = {key: self.client.get_metric_history(run_id, key) for key in self.by_name[run].data.metrics}
        return {key: sorted((metric.step, metric.value) for metric in history) for key, history in histories.items()}

    def params(self, run: str) -> dict:
        return self.by_name[run].data.params

    @staticmethod
    def param(value):
        return str(value)


class WandbLog:
    """Offline runs of the project named after the config, a folder each, read with W&B's own reader of a
    run file (`wandb leet inspect --json`: its records). A metric's x is the axis define_metric gave it."""

    def __init__(self, folder: Path):
        runs = [self.records(path) for path in (folder / "wandb").glob("offline-run-*")]
        assert {records["run"][0]["project"] for records in runs} == {"smoke"}
        self.by_name = {records["run"][0]["display_name"]: records for records in runs}

    @staticmethod
    def records(run: Path) -> dict[str, list[dict]]:
        """The run file's records by type."""
        command = [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run)]
        by_type = defaultdict(list)
        for line in subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines():
            record = json.loads(line)
            by_type[record["type"]].append(record[record["type"]])
        return by_type

    def runs(self) -> list[str]:
        return sorted(self.by_name)

    def scalars(self, run: str) -> dict[str, list[tuple[int, float]]]:
        records = self.by_name[run]
        axes = {metric["glob_name"]: metric["step_metric"] for metric in records["metric"]}
        points = defaultdict(list)
        for row in (history["item"] for history in records["history"]):
            for key, value in row.items():
                if not key.startswith("_") and key not in axes.values():
                    axis = next((axis for pattern, axis in axes.items() if fnmatch(key, pattern)), "_step")
                    points[key].append((row[axis], value))
        return dict(points)

    def params(self, run: str) -> dict:
        records = self.by_name[run]
        config = {}
        for update in (records["run"][0]["config"], *records["config"]):
            config |= update["update"]
        del config["_wandb"]
        return config

    @staticmethod
    def param(value):
        return value


READERS = {"tensorboard": TensorBoardLog, "mlflow": MlflowLog, "wandb": WandbLog}


@contextmanager
def wandb_session(folder: Path, **env: str) -> Iterator[None]:
    """W&B with no credentials and its settings and caches in `folder`, plus `env`; afterwards no W&B process."""
    with pytest.MonkeyPatch.context() as patch:
        for key in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE"):
            patch.delenv(key, raising=False)
        isolated = {f"WANDB_{key}_DIR": folder / key.lower() for key in ("CONFIG", "CACHE", "DATA")}
        settings = isolated | {"WANDB_DIR": folder, "NETRC": folder / "netrc", "WANDB_SILENT": "true"} | env
        for key, value in settings.items():
            patch.setenv(key, str(value))
        try:
            yield
        finally:
            wandb.teardown()
    assert not [child for child in psutil.Process().children(recursive=True) if child.name().startswith("wandb")]


@pytest.fixture(scope="module", params=sorted(READERS))
def tracked(request, smoke_assets, tmp_path_factory):
    """(run folder, tracker log) of a smoke run of both strategies, one seed; W&B's offline."""
    out = tmp_path_factory.mktemp(request.param)
    cfg = smoke_config(smoke_assets, f"train.log_with={request.param}", f"strategies=[{', '.join(STRATEGIES)}]")
    with wandb_session(tmp_path_factory.mktemp("wandb"), WANDB_MODE="offline", WANDB_CONSOLE="off"):
        ContinualRun(cfg, out).run()
        return out, READERS[request.param](out / "tracking")  # W&B's reader, offline too: it looks up no server


def stage_record(out: Path, strategy: str, stage: int) -> dict:
    results = json.loads((out / RESULTS_FILE).read_text())
    folder = out / "stage0" if stage == 0 else out / results["strategies"][strategy]["results_dir"]
    return json.loads((folder / "seed0" / ("" if stage == 0 else f"stage{stage}") / "stage.json").read_text())


def dotted(tree: dict, prefix: str = "") -> dict:
    """The config as its dotted keys; lists as JSON text."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= dotted(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = json.dumps(value) if isinstance(value, list) else value
    return flat


def test_each_strategy_and_seed_is_a_run_and_each_strategy_has_a_run_of_cl_figures(tracked):
    _, log = tracked
    assert log.runs() == sorted(f"{strategy}/{run}" for strategy in STRATEGIES for run in ("seed0", "all_seeds"))


def test_the_loss_of_every_optimizer_step_is_logged_per_stage(tracked):
    out, log = tracked
    for strategy in STRATEGIES:
        scalars = log.scalars(f"{strategy}/seed0")
        assert sorted(key for key in scalars if key.startswith("train/")) == ["train/loss/stage1", "train/loss/stage2"]
        for stage in (1, 2):
            losses = stage_record(out, strategy, stage)["train"]["losses"]
            steps, values = zip(*scalars[f"train/loss/stage{stage}"])
            assert list(steps) == list(range(1, len(losses) + 1))
            assert list(values) == approx(losses, rel=1e-6)  # TensorBoard keeps float32


def test_every_stage_evaluation_is_logged_with_the_stage_as_step(tracked):
    out, log = tracked
    for strategy in STRATEGIES:
        scalars = log.scalars(f"{strategy}/seed0")
        logged = {
            (key, step): value for key, points in scalars.items() if key.startswith("eval/") for step, value in points
        }
        expected = {
            (f"eval/{task}/{metric}", stage): value
            for stage in (0, 1, 2)
            for task, evaluation in stage_record(out, strategy, stage)["eval"].items()
            for metric, value in evaluation["scores"].items()
            if value is not None
        }
        assert ("eval/python/bleu", 2) in expected
        assert logged == approx(expected, rel=1e-6)


def test_the_config_is_every_runs_hyper_parameters(tracked):
    out, log = tracked
    config = {key: log.param(value) for key, value in dotted(yaml.safe_load((out / "config.yaml").read_text())).items()}
    assert config["train.lr"] == log.param(0.001) and config["data.languages"] == '["python", "javascript"]'
    for strategy in STRATEGIES:
        assert log.params(f"{strategy}/seed0") == config | {"strategy": strategy, "seed": log.param(0)}
        assert log.params(f"{strategy}/all_seeds") == config | {"strategy": strategy}


def test_the_final_cl_figures_are_the_results_files_means(tracked):
    out, log = tracked
    results = json.loads((out / RESULTS_FILE).read_text())
    for strategy in STRATEGIES:
        cl = results["strategies"][strategy]["cl"]
        expected = {
            f"cl/{metric}/{figure}": cl[metric][figure]["mean"]
            for metric in cl
            for figure in CL_FIGURES
            if cl[metric][figure] is not None and cl[metric][figure]["mean"] is not None
        }
        assert "cl/bleu/average" in expected and "cl/bleu/bwt" in expected
        points = log.scalars(f"{strategy}/all_seeds")
        assert all(len(values) == 1 for values in points.values())
        assert {key: values[0][1] for key, values in points.items()} == approx(expected, rel=1e-6)


def test_an_unknown_tracker_is_a_config_error_naming_the_choices():
    choices = r"\['none', 'tensorboard', 'mlflow', 'wandb'\]"
    with pytest.raises(ConfigError, match=rf"train\.log_with must be one of {choices}"):
        load_config(overrides=["train.log_with=comet_ml"])


@pytest.mark.parametrize("log_with", ["mlflow", "wandb"])
def test_a_missing_tracker_package_fails_before_the_run(monkeypatch, log_with):
    package, _ = tracking.PACKAGES[log_with]
    monkeypatch.setitem(tracking.PACKAGES, log_with, (package, lambda: False))
    with pytest.raises(UserError, match=rf"log_with={log_with} needs the {package} package.*\.\[tracking\]"):
        tracking.check_installed(log_with)


def test_wandb_without_an_api_key_goes_offline_and_says_how_to_sync(tmp_path, caplog):
    with wandb_session(tmp_path), caplog.at_level(logging.INFO, logger="hybridcl.tracking"):
        assert tracking.wandb_mode(tmp_path / "runs") == "offline"
        assert wandb.setup().settings.mode == "offline"  # the session's too: no usage analytics sent
    assert f"wandb sync {tmp_path / 'runs'}/offline-run-*" in caplog.text


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_wandb_keeps_the_mode_wandb_is_set_to(tmp_path, mode):
    with wandb_session(tmp_path, WANDB_MODE=mode):
        assert tracking.wandb_mode(tmp_path / "runs") == mode


def test_wandb_set_online_without_an_api_key_fails_before_the_run(tmp_path):
    with wandb_session(tmp_path, WANDB_MODE="online"), pytest.raises(UserError, match=r"WANDB_MODE=online .*API key"):
        tracking.wandb_mode(tmp_path / "runs")


def test_wandb_with_an_api_key_stays_online(tmp_path):
    with wandb_session(tmp_path, WANDB_API_KEY="0" * 40):
        assert tracking.wandb_mode(tmp_path / "runs") == "online"


def test_none_starts_no_tracker_and_writes_nothing(tmp_path):
    accelerator = make_accelerator(TrainConfig(), tracking_dir=tmp_path)
    tracker = tracking.Tracker(accelerator, {"name": "x", "train": {"log_with": "none"}})
    with tracker.run("task_specific/seed0", strategy="task_specific", seed=0):
        tracker.log_losses(1, 1, [0.5])
    assert accelerator.log_with == [] and accelerator.trackers == [] and not any(tmp_path.iterdir())
