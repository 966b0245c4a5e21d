"""One frozen config object from presets + YAML + `--set key=value` overrides.

Each section is a dataclass; a YAML file or an override may only name fields that exist, so a typo
is an error that names the key instead of a silently ignored setting. Every field has a rule (RULES),
checked when the config is built, so an impossible value fails before any data or model loads.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, get_type_hints

import yaml

from hybridcl.errors import UserError
from hybridcl.strategies import STRATEGIES

LANGUAGES = ("python", "javascript", "java", "go", "php", "ruby")
DIRECTIONS = ("generate", "summarize")
# encoder_top: after the last encoder block, before the encoder's final layer norm; decoder_top: the same in the decoder.
LAYER_POSITIONS = ("encoder_top", "decoder_top")
LAYER_INITS = ("identity", "random")
MIXED_PRECISIONS = ("auto", "no", "bf16", "fp16")
TRACKERS = ("none", "tensorboard", "mlflow")  # train.log_with: accelerate's tracker names
REPLAY_POLICIES = ("reservoir", "per_task")
EVAL_SPLITS = ("valid", "test")
# The stand-in base sizes: the keys of hybridcl.model.pretrain.SIZES, which imports torch (a test keeps them equal).
BASE_SIZES = ("micro", "tiny", "small")


def task_cue(direction: str, language: str) -> str:
    """What starts each source under data.task_prefix: `generate python: `, the format the stand-in base was
    pre-trained on (hybridcl.model.pretrain), which also names the language a shared component should write."""
    return f"{direction} {language}: "


class ConfigError(UserError, ValueError):
    """A config file or override that cannot be turned into a valid Config."""


# A rule for one field: (is this value allowed?, what is allowed). Each dataclass below has one per field in RULES
# (Config: per field that is not a section). NaN fails every comparison, so no numeric rule lets it through.
Rule = tuple[Callable[[Any], bool], str]

POSITIVE: Rule = (lambda v: v > 0, "positive")
POSITIVE_FINITE: Rule = (lambda v: 0 < v < math.inf, "positive and finite")
NON_NEGATIVE: Rule = (lambda v: v >= 0, ">= 0")
NON_NEGATIVE_FINITE: Rule = (lambda v: 0 <= v < math.inf, "finite and >= 0")
FRACTION: Rule = (lambda v: 0 <= v < 1, "in [0, 1)")
FLAG: Rule = (lambda v: isinstance(v, bool), "true or false")
STRING: Rule = (lambda v: isinstance(v, str), "a string")
TEXT: Rule = (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string")
FOLDER_NAME: Rule = (
    lambda v: TEXT[0](v) and v not in (".", "..") and not any(sep in v for sep in "/\\"),
    "a folder name (a non-empty string without / or \\, not . or ..)",
)


def one_of(allowed: Iterable[str]) -> Rule:
    allowed = tuple(allowed)
    return (lambda v: v in allowed, f"one of {list(allowed)}")


def distinct(entry: Rule) -> Rule:
    """A non-empty list without repeats whose every entry passes `entry`."""
    test, what = entry
    return (
        lambda vs: len(vs) > 0 and all(test(v) for v in vs) and len(set(vs)) == len(vs),
        f"a non-empty list without repeats, each entry {what}",
    )


@dataclass(frozen=True)
class DataConfig:
    # "hub" reads CodeSearchNet from the Hugging Face hub; anything else is a local path holding
    # CodeSearchNet-schema files (e.g. the output of `hybridcl corpus build`).
    source: str = "hub"
    hub_id: str = "code-search-net/code_search_net"
    # "auto": the parquet conversion branch `refs/convert/parquet` first, then `main` (whichever of
    # CodeSearchNet's forms its files show, see hybridcl.data.forms); or a branch, tag or commit, read alone.
    hub_revision: str = "auto"
    # A local folder holding CodeSearchNet in one of its served forms (parquet conversion, push_to_hub
    # parquet, the release's zips, the release unpacked), read instead of the hub; "" = the hub.
    hub_root: str = ""
    languages: tuple[str, ...] = ("python", "javascript")
    direction: str = "generate"  # generate: docstring -> code; summarize: code -> docstring
    # Each source starts with its task's cue, `<direction> <language>: ` (`generate python: `), the format the
    # stand-in base was pre-trained on: it tells shared components which language to write. false: the bare source.
    task_prefix: bool = True
    n_train: int = 8000
    n_valid: int = 2000
    sample_seed: int = 0
    max_source_tokens: int = 256
    max_target_tokens: int = 256
    max_record_chars: int = 20_000  # records whose code or docstring is longer are skipped as too_long
    # 0: no limit. Else records whose code (Python's without its docstring) is longer are skipped as
    # code_too_long: a task restricted to functions that fit the generation budget (see configs/local.yaml).
    max_code_chars: int = 0
    cache_dir: str = ".cache/hybridcl"

    RULES: ClassVar[dict[str, Rule]] = {
        "source": TEXT,
        "hub_id": TEXT,
        "hub_revision": (
            lambda v: TEXT[0](v) and not any(c.isspace() for c in v),
            "auto, or a branch, tag or 40-hex commit (a non-empty string without spaces)",
        ),
        "hub_root": STRING,
        "cache_dir": TEXT,
        "languages": distinct(one_of(LANGUAGES)),
        "direction": one_of(DIRECTIONS),
        "task_prefix": FLAG,
        "sample_seed": NON_NEGATIVE,
        "n_train": POSITIVE,
        "n_valid": POSITIVE,
        "max_source_tokens": POSITIVE,
        "max_target_tokens": POSITIVE,
        "max_record_chars": POSITIVE,
        "max_code_chars": NON_NEGATIVE,
    }


@dataclass(frozen=True)
class ModelConfig:
    name: str = "Salesforce/codet5-small"  # hub id or a local directory written by save_pretrained
    random_init: bool = False  # build the architecture from its config, without weights
    # Tokenizer to use instead of the model's own (hub id or directory); "" = the model's. Lets a
    # random-init codet5-small run offline with the stand-in base's tokenizer.
    tokenizer: str = ""
    # The hub revision of `name`: a branch, a tag or a 40-hex commit (recorded with the commit it resolves to).
    # Stays "main" for a directory.
    revision: str = "main"

    RULES: ClassVar[dict[str, Rule]] = {
        "name": TEXT,
        "random_init": FLAG,
        "tokenizer": STRING,
        "revision": (
            lambda v: isinstance(v, str) and v != "" and not any(c.isspace() for c in v),
            "a branch, tag or 40-hex commit (a non-empty string without spaces)",
        ),
    }


@dataclass(frozen=True)
class LoraSettings:
    """PEFT LoraConfig values for each task's adapter (on the base only, never the extra layer)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("q", "v")  # checked against the base's modules once it is loaded

    RULES: ClassVar[dict[str, Rule]] = {
        "r": POSITIVE,
        "alpha": POSITIVE,
        "dropout": FRACTION,
        "target_modules": distinct(TEXT),
    }


@dataclass(frozen=True)
class LayerSettings:
    """The extra full layer: `count` consecutive T5 blocks of the base's sizes (0: no layer), at `position`."""

    position: str = "encoder_top"  # see LAYER_POSITIONS
    # identity: every residual branch's output projection (attention `o`, feed-forward `wo`) is zero; "random": T5's own
    init: str = "identity"
    count: int = 1

    RULES: ClassVar[dict[str, Rule]] = {
        "position": one_of(LAYER_POSITIONS),
        "init": one_of(LAYER_INITS),
        "count": NON_NEGATIVE,
    }


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 8
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0  # 0: no gradient clipping
    grad_accum_steps: int = 1
    mixed_precision: str = "auto"  # auto: bf16 on GPUs that support it, else fp32; or "no" / "bf16" / "fp16"
    seed: int = 0
    log_with: str = "none"  # experiment tracking (hybridcl.tracking): "tensorboard" or "mlflow", into <out>/tracking/

    RULES: ClassVar[dict[str, Rule]] = {
        "epochs": POSITIVE,
        "batch_size": POSITIVE,
        "grad_accum_steps": POSITIVE,
        "lr": POSITIVE_FINITE,
        "weight_decay": NON_NEGATIVE_FINITE,
        "warmup_ratio": FRACTION,
        "max_grad_norm": NON_NEGATIVE_FINITE,
        "mixed_precision": one_of(MIXED_PRECISIONS),
        "seed": NON_NEGATIVE,
        "log_with": one_of(TRACKERS),
    }


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 64
    max_new_tokens: int = 256  # greedy decoding stops earlier once every sequence has ended
    # The CodeSearchNet split the evaluations score: data.n_valid examples drawn from it, none in the train sample.
    split: str = "valid"

    RULES: ClassVar[dict[str, Rule]] = {
        "batch_size": POSITIVE,
        "max_new_tokens": POSITIVE,
        "split": one_of(EVAL_SPLITS),
    }


@dataclass(frozen=True)
class OfflineConfig:
    """Air-gapped runs: build the mined corpus (at data.source) and the stand-in base (at model.name)
    on first use when they are missing, then reuse them."""

    build: bool = False
    base_size: str = "tiny"

    RULES: ClassVar[dict[str, Rule]] = {"build": FLAG, "base_size": one_of(BASE_SIZES)}


@dataclass(frozen=True)
class CLConfig:
    """The continual-learning baselines' settings (hybridcl.baselines): a baseline takes the fields it has by name."""

    replay_size: int = 200  # replay: earlier tasks' training examples in the buffer
    replay_policy: str = "reservoir"  # reservoir: uniform over every earlier example; per_task: equal shares
    ewc_lambda: float = 100.0  # ewc: weight of the penalty lambda/2 * sum F (theta - theta*)^2
    ewc_fisher_examples: int = 1000  # ewc: the stage's training examples the Fisher averages over; 0: all
    olora_lambda: float = 0.5  # olora: weight of the orthogonality penalty sum ||A_new A_old^T||^2

    RULES: ClassVar[dict[str, Rule]] = {
        "replay_size": POSITIVE,
        "replay_policy": one_of(REPLAY_POLICIES),
        "ewc_lambda": NON_NEGATIVE_FINITE,
        "ewc_fisher_examples": NON_NEGATIVE,
        "olora_lambda": NON_NEGATIVE_FINITE,
    }


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

    def validate(self) -> "Config":
        """Raise ConfigError, in one line naming the key, at the first value that breaks its rule."""
        for key in dataclasses.fields(self):
            value = getattr(self, key.name)
            if dataclasses.is_dataclass(value):
                _check(value, f"{key.name}.")
        _check(self, "")
        if self.offline.build and self.data.source == "hub":
            raise ConfigError(
                "offline.build needs data.source to be a local folder (where the corpus is built), got 'hub'"
            )
        if self.layer.count == 0:
            _check_layerless(self.strategies, self.data.languages)
        return self

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


def _check(section: Any, prefix: str) -> None:
    for name, (allowed, what) in section.RULES.items():
        value = getattr(section, name)
        if not allowed(value):
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"{prefix}{name} must be {what}, got {shown!r}")


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
