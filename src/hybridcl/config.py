"""One frozen config object from presets + YAML + `--set key=value` overrides.

Each section is a dataclass; a YAML file or an override may only name fields that exist, so a typo
is an error that names the key instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from hybridcl.errors import UserError

LANGUAGES = ("python", "javascript", "java", "go", "php", "ruby")
DIRECTIONS = ("generate", "summarize")


class ConfigError(UserError, ValueError):
    """A config file or override that cannot be turned into a valid Config."""


@dataclass(frozen=True)
class DataConfig:
    # "hub" reads CodeSearchNet from the Hugging Face hub; anything else is a local path holding
    # CodeSearchNet-schema files (e.g. the output of `hybridcl corpus build`).
    source: str = "hub"
    hub_id: str = "code-search-net/code_search_net"
    hub_revision: str = "refs/convert/parquet"
    languages: tuple[str, ...] = ("python", "javascript")
    direction: str = "generate"  # generate: docstring -> code; summarize: code -> docstring
    n_train: int = 8000
    n_valid: int = 2000
    sample_seed: int = 0
    max_source_tokens: int = 256
    max_target_tokens: int = 256
    max_record_chars: int = 20_000  # records whose code or docstring is longer are skipped as too_long
    cache_dir: str = ".cache/hybridcl"

    def validate(self) -> None:
        unknown = [lang for lang in self.languages if lang not in LANGUAGES]
        if unknown:
            raise ConfigError(f"data.languages: unknown language(s) {unknown}; choose from {list(LANGUAGES)}")
        if not self.languages:
            raise ConfigError("data.languages: at least one language is needed")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"data.direction: {self.direction!r} is not one of {list(DIRECTIONS)}")
        for name in ("n_train", "n_valid", "max_source_tokens", "max_target_tokens", "max_record_chars"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"data.{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class ModelConfig:
    name: str = "Salesforce/codet5-small"  # hub id or a local directory written by save_pretrained
    random_init: bool = False  # build the architecture from its config, without weights
    # Tokenizer to use instead of the model's own (hub id or directory); "" = the model's. Lets a
    # random-init codet5-small run offline with the stand-in base's tokenizer.
    tokenizer: str = ""


@dataclass(frozen=True)
class LoraSettings:
    """PEFT LoraConfig values for each task's adapter (on the base only, never the extra layer)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("q", "v")


@dataclass(frozen=True)
class LayerSettings:
    """The extra full transformer layer: one T5 encoder block of the base's sizes."""

    position: str = "encoder_top"  # appended after the last encoder block, before the final layer norm
    init: str = "identity"  # identity: zero attention `o` and feed-forward `wo`; "random": T5's own init


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 8
    lr: float = 5e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    grad_accum_steps: int = 1
    mixed_precision: str = "auto"  # auto: bf16 on GPUs that support it, else fp32; or "no" / "bf16" / "fp16"
    seed: int = 0


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = 64
    max_new_tokens: int = 256  # greedy decoding stops earlier once every sequence has ended


@dataclass(frozen=True)
class OfflineConfig:
    """Air-gapped runs: build the mined corpus (at data.source) and the stand-in base (at model.name)
    on first use when they are missing, then reuse them."""

    build: bool = False
    base_size: str = "tiny"


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
    strategies: tuple[str, ...] = ("task_specific", "shared_layer")
    seeds: int = 1  # independent repetitions (training seeds train.seed, train.seed + 1, ...)

    def validate(self) -> "Config":
        self.data.validate()
        from hybridcl.strategies import STRATEGIES  # the registry imports nothing from here

        unknown = [name for name in self.strategies if name not in STRATEGIES]
        if unknown or not self.strategies:
            raise ConfigError(f"strategies: unknown {unknown}; choose from {list(STRATEGIES)}")
        positive = {
            "train.epochs": self.train.epochs, "train.batch_size": self.train.batch_size, "train.lr": self.train.lr,
            "train.grad_accum_steps": self.train.grad_accum_steps, "lora.r": self.lora.r,
            "eval.batch_size": self.eval.batch_size, "eval.max_new_tokens": self.eval.max_new_tokens,
            "seeds": self.seeds,
        }
        for key, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{key} must be positive, got {value}")
        if not 0 <= self.lora.dropout < 1:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.lora.dropout}")
        if self.train.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ConfigError(f"train.mixed_precision: {self.train.mixed_precision!r} is not auto/no/bf16/fp16")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(values).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        path = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path)
        elif getattr(hint, "__origin__", None) is tuple:
            kwargs[key] = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        else:
            kwargs[key] = _coerce(hint, value, path)
    return cls(**kwargs)


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
    return key.strip(), yaml.safe_load(raw)


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults (the seed preset) <- YAML file <- overrides, validated."""
    tree: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        tree = yaml.safe_load(path.read_text()) or {}
    for text in overrides:
        _set_dotted(tree, *parse_override(text))
    return _build(Config, tree, "").validate()
