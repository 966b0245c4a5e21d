"""The sections of a config: one frozen dataclass per YAML section (`data`, `model`, `lora`, `layer`,
`train`, `eval`, `offline`, `cl`), the names each field may take, and a rule per field (RULES).

The components (data, model, training, evaluation) read their section from here; hybridcl.config
puts the sections together with the strategies and seeds and reads them from YAML.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from hybridcl.errors import UserError

LANGUAGES = ("python", "javascript", "java", "go", "php", "ruby")
DIRECTIONS = ("generate", "summarize")
# Where the added blocks go. A T5 base (seq2seq): encoder_top, after the last encoder block, before the encoder's final
# layer norm; decoder_top, the same in the decoder. A causal base: top (above the last block), after:<i> (after block i,
# counted from 0) or interleave:<k> (one after every k blocks, LLaMA Pro's block expansion).
SEQ2SEQ_POSITIONS = ("encoder_top", "decoder_top")
CAUSAL_POSITIONS = ("top", "after:<i>", "interleave:<k>")
LAYER_POSITIONS = SEQ2SEQ_POSITIONS + CAUSAL_POSITIONS
_CAUSAL_POSITION = re.compile(r"top|after:(0|[1-9][0-9]*)|interleave:[1-9][0-9]*")
# A T5 base: identity (every residual branch's output projection zero) or random (T5's own initialisation). A causal
# base: copy (the block below) or fresh (the architecture's own initialisation), output projections zero either way.
SEQ2SEQ_INITS = ("identity", "random")
CAUSAL_INITS = ("copy", "fresh")
LAYER_INITS = SEQ2SEQ_INITS + CAUSAL_INITS
IDENTITY_INITS = ("identity", "copy", "fresh")  # an added block computes the identity until it trains
MODEL_DTYPES = ("float32", "bfloat16", "float16")
SWEEP_LAUNCHERS = ("inline", "local", "slurm")  # hybridcl.sweep_jobs
JOBS_PER = ("point", "seed")
# --slurm key -> its type; each key is a submitit SlurmExecutor parameter (`time` in minutes, `mem` as sbatch
# takes it, e.g. 32G)
SLURM_RESOURCES = {
    "partition": str,
    "account": str,
    "qos": str,
    "constraint": str,
    "gpus_per_node": int,
    "cpus_per_task": int,
    "mem": str,
    "time": int,
    "array_parallelism": int,
}
# The prompt a causal base reads, per direction; `{source}` stands for the source (with its cue under data.task_prefix).
PROMPT_PLACEHOLDER = "{source}"
MIXED_PRECISIONS = ("auto", "no", "bf16", "fp16")
TRACKERS = ("none", "tensorboard", "mlflow", "wandb")  # train.log_with: accelerate's tracker names
REPLAY_POLICIES = ("reservoir", "per_task", "ring")
EVAL_SPLITS = ("valid", "test")
# The stand-in base sizes: the keys of hybridcl.model.pretrain.SIZES, which imports torch (a test keeps them equal).
BASE_SIZES = ("micro", "tiny", "small")
BASE_ARCHS = ("t5", "causal")


def task_cue(direction: str, language: str) -> str:
    """What starts each source under data.task_prefix: `generate python: `, the format the stand-in base was
    pre-trained on (hybridcl.model.pretrain_data), which also names the language a shared component should write."""
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


def is_layer_position(value: Any) -> bool:
    return isinstance(value, str) and (value in SEQ2SEQ_POSITIONS or _CAUSAL_POSITION.fullmatch(value) is not None)


def prompt_rule(direction: str) -> Rule:
    return (
        lambda v: isinstance(v, str) and v.count(PROMPT_PLACEHOLDER) == 1,
        f"a string holding {PROMPT_PLACEHOLDER} once (where the {direction} source goes)",
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
    # A stream of other tasks, `<kind>_<subtask>` (hybridcl.data.tasks: concode_none, translate_java-cs,
    # summarize_ruby, refine_small, ...), read instead of CodeSearchNet's languages; data.source: "hub" reads
    # the hub's CodeXGLUE datasets, a folder is CodeT5's data folder. Empty: the CodeSearchNet languages.
    tasks: tuple[str, ...] = ()
    # Each source starts with its task's cue, `<direction> <language>: ` (`generate python: `), the format the
    # stand-in base was pre-trained on: it tells shared components which language to write. false: the bare source.
    task_prefix: bool = True
    n_train: int = 8000  # 0: the whole training split
    n_valid: int = 2000
    sample_seed: int = 0
    max_source_tokens: int = 256
    max_target_tokens: int = 256
    max_record_chars: int = 20_000  # records whose code or docstring is longer are skipped as too_long
    # 0: no limit. Else records whose code (Python's without its docstring) is longer are skipped as
    # code_too_long: a task restricted to functions that fit the generation budget (see configs/local.yaml).
    max_code_chars: int = 0
    # A causal base reads the source inside this template and writes the target after it (a T5 base ignores them).
    prompt_generate: str = "{source}\nCode:\n"
    prompt_summarize: str = "{source}\nSummary:\n"
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
        "tasks": (
            lambda v: all(TEXT[0](t) for t in v) and len(set(v)) == len(v),
            "a list of task names without repeats",
        ),
        "task_prefix": FLAG,
        "sample_seed": NON_NEGATIVE,
        "n_train": NON_NEGATIVE,
        "n_valid": POSITIVE,
        "max_source_tokens": POSITIVE,
        "max_target_tokens": POSITIVE,
        "max_record_chars": POSITIVE,
        "max_code_chars": NON_NEGATIVE,
        "prompt_generate": prompt_rule("generate"),
        "prompt_summarize": prompt_rule("summarize"),
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
    # The base's parameters, frozen or not: float32, or bfloat16 / float16 to halve a large base's memory.
    dtype: str = "float32"

    RULES: ClassVar[dict[str, Rule]] = {
        "name": TEXT,
        "dtype": one_of(MODEL_DTYPES),
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
    # Empty: PEFT's default for the base's family (T5: q, v; Llama, Qwen2, Mistral: q_proj, v_proj). Checked against
    # the base's modules once it is loaded.
    target_modules: tuple[str, ...] = ()

    RULES: ClassVar[dict[str, Rule]] = {
        "r": POSITIVE,
        "alpha": POSITIVE,
        "dropout": FRACTION,
        "target_modules": (
            lambda v: all(TEXT[0](t) for t in v) and len(set(v)) == len(v),
            "a list of module names without repeats (empty: PEFT's default for the base's family)",
        ),
    }


@dataclass(frozen=True)
class LayerSettings:
    """The extra full layer: `count` blocks of the base's own kind and sizes (0: no layer), at `position`."""

    position: str = "encoder_top"  # see LAYER_POSITIONS; which apply depends on the base (hybridcl.model.families)
    init: str = "identity"  # see LAYER_INITS
    count: int = 1

    RULES: ClassVar[dict[str, Rule]] = {
        "position": (is_layer_position, f"one of {list(LAYER_POSITIONS)}"),
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
    warmup_steps: int = 0  # > 0: this many warm-up steps instead of warmup_ratio of each stage's steps
    max_grad_norm: float = 1.0  # 0: no gradient clipping
    grad_accum_steps: int = 1
    mixed_precision: str = "auto"  # auto: bf16 on GPUs that support it, else fp32; or "no" / "bf16" / "fp16"
    seed: int = 0
    log_with: str = "none"  # hybridcl.tracking: "tensorboard", "mlflow" or "wandb", into <out>/tracking/
    gradient_checkpointing: bool = (
        False  # recompute the base's activations in the backward pass: less memory, more time
    )

    RULES: ClassVar[dict[str, Rule]] = {
        "epochs": POSITIVE,
        "batch_size": POSITIVE,
        "grad_accum_steps": POSITIVE,
        "lr": POSITIVE_FINITE,
        "weight_decay": NON_NEGATIVE_FINITE,
        "warmup_ratio": FRACTION,
        "warmup_steps": NON_NEGATIVE,
        "max_grad_norm": NON_NEGATIVE_FINITE,
        "mixed_precision": one_of(MIXED_PRECISIONS),
        "seed": NON_NEGATIVE,
        "log_with": one_of(TRACKERS),
        "gradient_checkpointing": FLAG,
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
    base_arch: str = "t5"  # the stand-in's architecture: t5 (models/stand-in-base) or causal (models/stand-in-causal)

    RULES: ClassVar[dict[str, Rule]] = {"build": FLAG, "base_size": one_of(BASE_SIZES), "base_arch": one_of(BASE_ARCHS)}


@dataclass(frozen=True)
class CLConfig:
    """The continual-learning baselines' settings (hybridcl.strategies.baselines): a baseline takes the fields it has by name."""

    replay_size: int = 200  # replay: earlier tasks' training examples in the buffer
    # reservoir: uniform over every earlier example; per_task: equal shares of the buffer among the earlier tasks;
    # ring: replay_size // (tasks in the stream) examples of each earlier task (CodeTask-CL's ER ring buffer)
    replay_policy: str = "reservoir"
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


def check_section(section: Any, prefix: str) -> None:
    """Raise ConfigError, in one line naming the key, at the first field of `section` that breaks its rule."""
    for name, (allowed, what) in section.RULES.items():
        value = getattr(section, name)
        if not allowed(value):
            shown = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"{prefix}{name} must be {what}, got {shown!r}")
