"""One frozen config object from presets + YAML + `--set key=value` overrides.

A config is its sections (hybridcl.settings: one dataclass each) plus the strategies to run and the
number of seeds. A YAML file or an override may only name fields that exist, so a typo is an error
that names the key instead of a silently ignored setting. Every field has a rule (RULES), checked when
the config is built, so an impossible value (an unknown strategy, layer.count=0 with a strategy that
trains only layers) fails before any data or model loads.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, get_type_hints

import yaml

from hybridcl.data.tasks import Task, stream_tasks
from hybridcl.settings import (
    FOLDER_NAME,
    POSITIVE,
    CLConfig,
    ConfigError,
    DataConfig,
    EvalConfig,
    LayerSettings,
    LoraSettings,
    ModelConfig,
    OfflineConfig,
    Rule,
    TrainConfig,
    check_section,
    distinct,
)
from hybridcl.strategies import STRATEGIES


@dataclass(frozen=True)
class Config:
    name: str = "seed"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    layer: LayerSettings = field(default_factory=LayerSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    cl: CLConfig = field(default_factory=CLConfig)
    strategies: tuple[str, ...] = ("task_specific", "shared_layer")
    seeds: int = 1  # independent repetitions (training seeds train.seed, train.seed + 1, ...)

    RULES: ClassVar[dict[str, Rule]] = {  # the sections' fields: in each section's RULES
        "name": FOLDER_NAME,
        # looked up when checked: a strategy registered after import (a plug-in, a test) is known too
        "strategies": distinct((lambda name: name in STRATEGIES, f"one of {list(STRATEGIES)}")),
        "seeds": POSITIVE,
    }

    @property
    def seed_values(self) -> list[int]:
        """The training seeds of the `seeds` repetitions."""
        return [self.train.seed + k for k in range(self.seeds)]

    def validate(self) -> "Config":
        """Raise ConfigError, in one line naming the key, at the first value that breaks its rule."""
        for key in dataclasses.fields(self):
            value = getattr(self, key.name)
            if dataclasses.is_dataclass(value):
                check_section(value, f"{key.name}.")
        check_section(self, "")
        if self.offline.build and self.data.source == "hub":
            raise ConfigError(
                "offline.build needs data.source to be a local folder (where the corpus is built), got 'hub'"
            )
        tasks = self.tasks  # an unknown task name is a ConfigError here
        if self.data.tasks and self.offline.build:
            raise ConfigError(
                "offline.build mines a CodeSearchNet corpus; a data.tasks stream reads CodeT5's data folder "
                "(data.source=DIR) or the hub's CodeXGLUE datasets (data.source=hub)"
            )
        if self.data.tasks and self.data.hub_root:
            raise ConfigError(
                "data.hub_root holds CodeSearchNet; a data.tasks stream reads data.source: hub (the hub's CodeXGLUE "
                "datasets) or CodeT5's data folder"
            )
        if self.train.warmup_steps and self.train.warmup_ratio:
            raise ConfigError("train.warmup_steps and train.warmup_ratio are both set; set one of them")
        if self.layer.count == 0:
            _check_layerless(self.strategies, tuple(task.key for task in tasks))
        return self

    @property
    def tasks(self) -> tuple[Task, ...]:
        """The stream's tasks in training order (hybridcl.data.tasks); a name it does not know is a ConfigError."""
        return stream_tasks(self.data)

    @property
    def task_keys(self) -> tuple[str, ...]:
        return tuple(task.key for task in self.tasks)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_layerless(strategies: Iterable[str], tasks: tuple[str, ...]) -> None:
    """With layer.count=0 a layer has no parameters: a strategy with a stage that trains only layers trains nothing."""
    for name in strategies:
        if any(not (s.trainable.loras or s.trainable.base) for s in STRATEGIES[name].stages(tasks)):
            raise ConfigError(
                f"layer.count=0 leaves strategy {name!r} nothing to train (it trains only layers); "
                "use layer.count >= 1 or leave it out of strategies"
            )


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(values).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(_dotted(where, key) for key in set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}; {where or 'the top level'} has {sorted(known)}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        path = _dotted(where, key)
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path)
        elif getattr(hint, "__origin__", None) is tuple:
            kwargs[key] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        else:
            kwargs[key] = _coerce(hint, value, path)
    return cls(**kwargs)


def _dotted(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)  # str: YAML keys need not be strings


def _coerce(hint: Any, value: Any, path: str) -> Any:
    if hint in (int, float) and isinstance(value, str):
        value = _number(value)  # YAML 1.1 reads 1e-4 (no dot) as a string
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{path}: expected true/false, got {value!r}")
    if hint in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if hint is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{path}: expected a whole number, got {value!r}")
    if hint in (int, float):
        return hint(value)
    if hint is str and isinstance(value, bool):  # YAML 1.1: an unquoted no, off, yes or on is a boolean
        raise ConfigError(
            f"{path}: expected a string, got {value!r} (YAML reads an unquoted no/yes as false/true: quote it)"
        )
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {value!r}")
    return value


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {part} is not a section")
    node[leaf] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`data.n_train=100` -> ("data.n_train", 100); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    return key.strip(), _parse_yaml(raw, f"the value of override {text!r}")


def _parse_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise ConfigError(f"{where} is not valid YAML{at}: {problem}") from error


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults (the seed preset) <- YAML file <- overrides, validated."""
    tree = {} if path is None else _read_config_file(Path(path))
    for text in overrides:
        _set_dotted(tree, *parse_override(text))
    return _build(Config, tree, "").validate()


# Keys added with a default that changes what a run does, each with the value that runs from before the key had.
SAVED_RUN_VALUES = {"data.task_prefix": False}


def load_run_config(path: str | Path) -> Config:
    """The config.yaml a run wrote into its folder. A key of SAVED_RUN_VALUES that the file lacks was written
    before the key existed: it takes the value that run had, not today's default."""
    tree = _read_config_file(Path(path))
    for dotted, value in SAVED_RUN_VALUES.items():
        if not _has_dotted(tree, dotted):
            _set_dotted(tree, dotted, value)
    return _build(Config, tree, "").validate()


def _has_dotted(tree: dict[str, Any], dotted: str) -> bool:
    node: Any = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path} cannot be read: {error}") from None
    tree = _parse_yaml(text, f"config file {path}")
    if tree is None:  # an empty file: the defaults
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(
            f"config file {path}: the top level must be a mapping of keys and sections, got {type(tree).__name__}"
        )
    return tree


def plain_config(cfg: Config) -> dict:
    """The resolved config as plain JSON values (tuples as lists), as config.yaml and the results hold it."""
    return json.loads(json.dumps(cfg.to_dict()))
