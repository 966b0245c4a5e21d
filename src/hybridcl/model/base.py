"""The frozen base model: a Hugging Face seq2seq model + tokenizer, from the hub or a local directory.

`resolve_model(ModelConfig)` says where the base comes from without loading weights or downloading anything:
a `ModelSource` with the hub commit (or a directory's content fingerprint), the weights' form, the files the
load reads with their sizes, and whether they are all cached. `load_base(ModelConfig, source=...)` is the only
way the rest of the code gets a base. It returns the model in eval mode with every parameter frozen
(`requires_grad=False`); the hybrid model trains only what a strategy declares.

Sources, in order:
- `model.name` is an existing directory: read it (written by `save_pretrained`, e.g. the stand-in base
  of `hybridcl base build`), never touching the network. `model.revision` must stay `main`.
- otherwise `model.name` is a hub id (default `Salesforce/codet5-small`) at `model.revision` (a branch, tag or
  40-hex commit). Online, the hub's API gives the commit and the file sizes, the files not yet in the local
  Hugging Face cache are downloaded at that commit, and the model is read from the cache's snapshot folder.
  Offline (`HF_HUB_OFFLINE=1`, or the hub endpoint does not answer a 3-second connection probe) only the
  cache is read (`refs/<revision>` names the commit), so a missing model fails in well under a second.
- `model.random_init=true`: the architecture without trained weights, seeded. For codet5-small (or a
  hub name whose config cannot be fetched) that is `CODET5_SMALL`, carried here, so parameter counts
  and timings of the real shape need no network. For a directory it is the directory's config.json.
  The tokenizer is then the directory's / cached one if there is one, else None.

Weights: `model.safetensors` (or its sharded index) when the folder has it, else `pytorch_model.bin` (or its
sharded index) through torch's weights-only unpickler. That unpickler rebuilds tensors and plain containers
only; a pickle that names any other global (a function it would call) is refused before anything runs.
Remote code is never run. transformers only ever reads a local folder here, so it never reaches its hub
branch that asks for a safetensors conversion. Failures raise `ModelError`, one line, whose message names
the offline alternatives (`hybridcl base build`, `--set model.name=DIR`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    T5Config,
)

from hybridcl.errors import UserError
from hybridcl.fingerprints import file_sha256, fingerprint
from hybridcl.hf_cache import cached_commit, repo_folder, snapshot_folder
from hybridcl.hub_access import hub_unavailable
from hybridcl.model.families import CAUSAL, base_kind
from hybridcl.settings import ModelConfig

logger = logging.getLogger(__name__)

CODET5_SMALL_NAME = "Salesforce/codet5-small"

# Salesforce/codet5-small's architecture (its config.json, minus the hub bookkeeping): a T5 with
# 60,492,288 parameters (embeddings tied between encoder, decoder and LM head). Use a copy
# (`codet5_small_config()`), never mutate this one.
CODET5_SMALL = T5Config(
    vocab_size=32100,
    d_model=512,
    d_kv=64,
    d_ff=2048,
    num_layers=6,
    num_decoder_layers=6,
    num_heads=8,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    dropout_rate=0.1,
    layer_norm_epsilon=1e-6,
    initializer_factor=1.0,
    feed_forward_proj="relu",
    is_encoder_decoder=True,
    use_cache=True,
    pad_token_id=0,
    eos_token_id=2,
    bos_token_id=1,
    decoder_start_token_id=0,
    tie_word_embeddings=True,
)
CODET5_SMALL_PARAMETERS = 60_492_288

QWEN25_CODER_05B_NAME = "Qwen/Qwen2.5-Coder-0.5B"
# Qwen/Qwen2.5-Coder-0.5B's architecture, from its published config.json
# (https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B/blob/main/config.json; docs/causal-bases.md): a Qwen2 of
# 494,032,768 parameters (embeddings tied with the LM head). Use a copy (`known_architecture`).
QWEN25_CODER_05B = Qwen2Config(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    hidden_act="silu",
    max_position_embeddings=32768,
    initializer_range=0.02,
    rms_norm_eps=1e-6,
    rope_theta=1000000.0,
    use_sliding_window=False,
    sliding_window=32768,
    max_window_layers=24,
    attention_dropout=0.0,
    tie_word_embeddings=True,
    bos_token_id=151643,
    eos_token_id=151643,
    use_cache=True,
)
QWEN25_CODER_05B_PARAMETERS = 494_032_768
# Architectures carried here, so that `model.random_init` builds them (counts, timings) without the hub.
KNOWN_ARCHITECTURES = {CODET5_SMALL_NAME: CODET5_SMALL, QWEN25_CODER_05B_NAME: QWEN25_CODER_05B}

HUB_API_TIMEOUT_S = 10.0
REPO_TYPE = "model"

# The weights load_base reads, in order of preference: (form, the file that announces it).
WEIGHT_FORMS = (
    ("safetensors", "model.safetensors"),
    ("safetensors-sharded", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin"),
    ("pytorch_model.bin-sharded", "pytorch_model.bin.index.json"),
)
# The shards save_pretrained writes, for a hub listing whose index is not cached yet.
SHARD_NAMES = {
    "safetensors-sharded": re.compile(r"model-\d+-of-\d+\.safetensors"),
    "pytorch_model.bin-sharded": re.compile(r"pytorch_model-\d+-of-\d+\.bin"),
}
# Besides the weights, what from_pretrained and AutoTokenizer read when a folder has it.
COMPANION_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)

OFFLINE_HINT = (
    "Offline, build the stand-in base with `hybridcl base build --corpus DIR --out DIR` and use it with "
    "`--set model.name=DIR`; or point `--set model.name=/path/to/dir` at any local directory written by "
    "save_pretrained (config.json, model.safetensors or pytorch_model.bin, and the tokenizer files); or, for "
    "parameter counts and timings only, `--set model.random_init=true` builds codet5-small's architecture with "
    "random weights."
)


class ModelError(UserError, RuntimeError):
    """A base model that cannot be loaded: unknown name, hub unreachable, missing or unsafe files."""


@dataclass(frozen=True)
class ModelSource:
    """Where the base comes from, resolved before anything loads (see the module docstring)."""

    name: str  # model.name as given
    kind: str  # "hub" | "directory" | "random_init"
    revision: str | None  # the requested revision (hub), else None
    commit: str | None  # the resolved 40-hex commit (hub), else None
    fingerprint: str | None  # "sha256:<hex>" over the files' names, sizes and contents (directory), else None
    form: str  # a WEIGHT_FORMS form, or "random_init"
    files: tuple[tuple[str, int], ...]  # (name relative to the repository or folder, bytes) of each file read
    cached: bool  # every file is on this machine
    download_bytes: int  # bytes still to download

    def as_record(self) -> dict:
        return {**dataclasses.asdict(self), "files": [[name, size] for name, size in self.files]}

    def identity(self) -> str:
        """What a continued run must find again: the commit or content fingerprint (random_init: the name), and the form."""
        return f"{self.commit or self.fingerprint or self.name} {self.form}"


def codet5_small_config() -> T5Config:
    """A fresh copy of `CODET5_SMALL`."""
    return copy.deepcopy(CODET5_SMALL)


def known_architecture(name: str) -> PretrainedConfig | None:
    """A fresh copy of the architecture carried for hub model `name`, or None."""
    config = KNOWN_ARCHITECTURES.get(name)
    return copy.deepcopy(config) if config is not None else None


def model_class(config: PretrainedConfig):
    """The Auto class that builds a base of this config's kind (ConfigError for an unsupported family)."""
    return AutoModelForCausalLM if base_kind(config) == CAUSAL else AutoModelForSeq2SeqLM


def torch_dtype(model_cfg: ModelConfig) -> torch.dtype:
    return getattr(torch, model_cfg.dtype)


# ------------------------------------------------------------------------------------------ resolve


def resolve_model(model_cfg: ModelConfig) -> ModelSource:
    """Where `model_cfg`'s base comes from, without loading weights or downloading; ModelError if it cannot be found."""
    name = str(model_cfg.name).strip()
    folder = _local_folder(name)
    if model_cfg.random_init:
        return ModelSource(name, "random_init", None, None, None, "random_init", (), True, 0)
    if folder is not None:
        return _resolve_directory(name, folder, model_cfg.revision)
    return _resolve_hub(name, model_cfg.revision)


def _local_folder(name: str) -> Path | None:
    """The directory `name` names, or None for a hub id; ModelError for anything else."""
    if not name:
        raise ModelError(f"model.name is empty. {OFFLINE_HINT}")
    local = Path(name).expanduser()
    if local.is_dir():
        return local
    if local.exists():
        raise ModelError(f"model.name {name!r} is a file, not a model directory. {OFFLINE_HINT}")
    if _looks_like_path(name):
        raise ModelError(f"model.name {name!r}: no such directory. {OFFLINE_HINT}")
    return None


def _resolve_directory(name: str, folder: Path, revision: str) -> ModelSource:
    default = ModelConfig().revision
    if revision != default:
        raise ModelError(
            f"model.revision={revision!r} names a hub revision, but model.name {name!r} is a directory; "
            f"leave model.revision at {default!r}"
        )
    form, files = _files_to_read(folder, _file_names(folder), f"directory {folder}")
    sizes = tuple((file, (folder / file).stat().st_size) for file in files)
    return ModelSource(name, "directory", None, None, _fingerprint(folder, files), form, sizes, True, 0)


def _resolve_hub(name: str, revision: str) -> ModelSource:
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError, RevisionNotFoundError

    reason = hub_unavailable()
    if reason is None:
        try:
            return _resolve_online(name, revision)
        except (RepositoryNotFoundError, RevisionNotFoundError, HFValidationError) as error:
            raise ModelError(f"hub model {name!r} @ {revision}: {_first_line(error)}. {OFFLINE_HINT}") from error
        except Exception as error:  # reachable, but no answer (timeout, server error): the cache may hold it
            reason = f"the hub's API did not answer ({_first_line(error)})"
    logger.info("%s; looking for %r in the local Hugging Face cache only", reason, name)
    return _resolve_cached(name, revision, reason)


def _resolve_online(name: str, revision: str) -> ModelSource:
    from huggingface_hub import HfApi

    info = HfApi().model_info(name, revision=revision, files_metadata=True, timeout=HUB_API_TIMEOUT_S)
    sizes = {sibling.rfilename: sibling.size or 0 for sibling in info.siblings or ()}
    snapshot = snapshot_folder(name, REPO_TYPE, info.sha)
    form, files = _files_to_read(snapshot, set(sizes), f"hub model {name!r} @ {revision} (commit {info.sha})")
    missing = [file for file in files if not (snapshot / file).is_file()]
    listed = tuple((file, sizes[file]) for file in files)
    return ModelSource(name, "hub", revision, info.sha, None, form, listed, not missing, sum(sizes[f] for f in missing))


def _resolve_cached(name: str, revision: str, reason: str) -> ModelSource:
    from huggingface_hub import constants

    where = f"hub model {name!r} @ {revision} ({reason}: local cache only)"
    commit = cached_commit(name, REPO_TYPE, revision)
    snapshot = snapshot_folder(name, REPO_TYPE, commit) if commit else None
    if snapshot is None or not snapshot.is_dir():
        raise ModelError(f"{where}: not in the local Hugging Face cache {constants.HF_HUB_CACHE}. {OFFLINE_HINT}")
    form, files = _files_to_read(snapshot, _file_names(snapshot), where)
    sizes = tuple((file, (snapshot / file).stat().st_size) for file in files)
    return ModelSource(name, "hub", revision, commit, None, form, sizes, True, 0)


def _files_to_read(folder: Path, names: set[str], where: str) -> tuple[str, list[str]]:
    """(form, sorted files the load reads) among `names`, the files of a folder or hub repository; a shard
    index is read from `folder` when it is there."""
    if "config.json" not in names:
        raise ModelError(f"{where}: missing config.json; not a save_pretrained folder. {OFFLINE_HINT}")
    for form, announcing in WEIGHT_FORMS:
        if announcing in names:
            weights = [announcing, *_shards(form, names, folder / announcing, where)]
            missing = [file for file in weights if file not in names]
            if missing:
                raise ModelError(f"{where}: missing {', '.join(missing)}, named by {announcing}. {OFFLINE_HINT}")
            return form, sorted({*(file for file in COMPANION_FILES if file in names), *weights})
    raise ModelError(
        f"{where}: no weights (model.safetensors or pytorch_model.bin, or a sharded index of either). {OFFLINE_HINT}"
    )


def _shards(form: str, names: set[str], index: Path, where: str) -> list[str]:
    if form not in SHARD_NAMES:
        return []
    if not index.is_file():
        return sorted(name for name in names if SHARD_NAMES[form].fullmatch(name))
    try:
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelError(f"{where}: {index.name} is not a shard index ({_first_line(error)})") from error
    if any(Path(shard).name != shard for shard in shards):
        raise ModelError(f"{where}: {index.name} names shards outside the folder")
    return shards


def _fingerprint(folder: Path, files: list[str]) -> str:
    return fingerprint((file, (folder / file).stat().st_size, file_sha256(folder / file)) for file in files)


def _file_names(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir() if path.is_file()}


# --------------------------------------------------------------------------------------------- load


def load_base(
    model_cfg: ModelConfig, *, seed: int = 0, source: ModelSource | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None]:
    """(model, tokenizer) for `model_cfg`; the model is in `model.dtype`, in eval mode, with all parameters frozen.

    `source` is `resolve_model(model_cfg)`, resolved here when not given. The tokenizer is None only with
    `random_init=True` when no tokenizer is found locally. `seed` seeds the random initialisation (the global
    torch RNG is left as it was). A tokenizer without a pad token (most causal LMs') pads with its EOS: padding
    is masked out of attention and loss.
    """
    source = source or resolve_model(model_cfg)
    if source.kind == "random_init":
        model, tokenizer = _random_init(model_cfg, seed=seed)
    else:
        model, tokenizer = _pretrained(source, torch_dtype(model_cfg))
    if model_cfg.tokenizer:
        tokenizer = _tokenizer_override(model_cfg.tokenizer, model)
    if tokenizer is not None and tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return freeze(model), tokenizer


def base_config(model_cfg: ModelConfig, source: ModelSource) -> PretrainedConfig:
    """The base's config alone (config.json; for a hub model not yet cached, that one file is downloaded), so that
    settings that cannot fit the base are refused before its weights load."""
    if source.kind == "random_init":
        return _random_config(*_random_init_origin(model_cfg))
    if source.kind == "hub" and not (snapshot_folder(source.name, REPO_TYPE, source.commit) / "config.json").is_file():
        _download(source, "config.json")
    folder = (
        Path(source.name).expanduser()
        if source.kind == "directory"
        else snapshot_folder(source.name, REPO_TYPE, source.commit)
    )
    try:
        return AutoConfig.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    except Exception as error:
        raise ModelError(f"{folder}: cannot read config.json ({_first_line(error)}). {OFFLINE_HINT}") from error


def freeze(model: PreTrainedModel) -> PreTrainedModel:
    """Eval mode, no gradients for any parameter; returns the same model."""
    model.eval()
    model.requires_grad_(False)
    return model


def _pretrained(source: ModelSource, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    folder = _folder_with_files(source)
    where = f"directory {folder}" if source.kind == "directory" else f"hub model {source.name!r} @ {source.commit}"
    bins = [name for name, _ in source.files if name.endswith(".bin")]
    model = _read_model(folder, source.form, bins, where, dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    except Exception as error:
        raise ModelError(f"cannot load the tokenizer from {where}: {_first_line(error)}. {OFFLINE_HINT}") from error
    if source.kind == "hub":  # named as a load by hub id names them (run records, the batch cache's tokenizer key)
        model.name_or_path = model.config.name_or_path = tokenizer.name_or_path = source.name
    return model, tokenizer


def _folder_with_files(source: ModelSource) -> Path:
    """The folder transformers reads: the directory, or the hub commit's snapshot in the cache once it has every file."""
    if source.kind == "directory":
        return Path(source.name).expanduser()
    snapshot = snapshot_folder(source.name, REPO_TYPE, source.commit)
    for name, _ in source.files:
        if not (snapshot / name).is_file():
            _download(source, name)
    return snapshot


def _download(source: ModelSource, filename: str) -> None:
    from huggingface_hub import constants, hf_hub_download

    where = f"hub model {source.name!r} @ {source.revision}"
    try:
        # by revision, not commit, so that the cache records refs/<revision> for later offline runs
        path = hf_hub_download(source.name, filename, revision=source.revision, cache_dir=constants.HF_HUB_CACHE)
    except Exception as error:
        raise ModelError(f"cannot download {filename} of {where}: {_first_line(error)}. {OFFLINE_HINT}") from error
    if Path(path).parent.name != source.commit:
        raise ModelError(
            f"{where} moved from commit {source.commit} to {Path(path).parent.name} during the load; "
            "run again, or pin model.revision to a commit"
        )


def _read_model(folder: Path, form: str, bins: list[str], where: str, dtype: torch.dtype) -> PreTrainedModel:
    try:
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    except Exception as error:
        raise ModelError(f"{where}: cannot read config.json ({_first_line(error)}). {OFFLINE_HINT}") from error
    try:
        return model_class(config).from_pretrained(
            str(folder),
            use_safetensors=form.startswith("safetensors"),
            weights_only=True,  # transformers' default, spelled out: a .bin is never fully unpickled
            trust_remote_code=False,
            local_files_only=True,
            dtype=dtype,
        )
    except pickle.UnpicklingError as error:
        path, refusal = _refused_bin(folder, bins, error)
        raise ModelError(
            f"{path}: refused by torch's weights-only unpickler ({_refusal_reason(refusal)}); "
            "only plain tensors are read"
        ) from error
    except Exception as error:  # OSError (missing files), ValueError, ...
        raise ModelError(f"cannot load the model from {where}: {_first_line(error)}. {OFFLINE_HINT}") from error


def _refused_bin(folder: Path, bins: list[str], error: Exception) -> tuple[Path, Exception]:
    """The .bin the unpickler refused and its refusal: among shards, the first one refused again (on "meta",
    so no tensor data is read)."""
    if len(bins) == 1:
        return folder / bins[0], error
    for name in bins:
        try:
            torch.load(folder / name, map_location="meta", weights_only=True)
        except pickle.UnpicklingError as refusal:
            return folder / name, refusal
    return folder, error


def _refusal_reason(error: Exception) -> str:
    """torch's reason in a few words: the global the pickle would call, or the unpickler's own message."""
    detail = str(error).partition("WeightsUnpickler error:")[2].strip()
    refused_global = re.match(r"Unsupported global: GLOBAL (\S+)", detail)
    if refused_global:
        return f"it would run code: {refused_global[1]}"
    return detail.splitlines()[0] if detail else _first_line(error)


def _random_init(model_cfg: ModelConfig, *, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None]:
    name, where, is_dir, options = _random_init_origin(model_cfg)
    config = _random_config(name, where, is_dir, options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config).from_config(config, trust_remote_code=False, dtype=torch_dtype(model_cfg))
    tokenizer = None
    if is_dir or not options["local_files_only"] or repo_folder(name, REPO_TYPE).is_dir():
        try:
            tokenizer = AutoTokenizer.from_pretrained(where, **options)
        except Exception as error:
            logger.info("random_init: no tokenizer for %r (%s)", name, _first_line(error))
    return model, tokenizer


def _random_init_origin(model_cfg: ModelConfig) -> tuple[str, str, bool, dict]:
    """(name, where to read it, whether it is a directory, from_pretrained options) of a random-init base."""
    name = str(model_cfg.name).strip()
    local = Path(name).expanduser()
    is_dir = local.is_dir()
    offline_reason = None if is_dir else hub_unavailable()
    if offline_reason:
        logger.info("%s; looking for %r in the local Hugging Face cache only", offline_reason, name)
    options = {"local_files_only": is_dir or offline_reason is not None, "trust_remote_code": False}
    if not is_dir:
        options["revision"] = model_cfg.revision
    return name, str(local) if is_dir else name, is_dir, options


def _random_config(name: str, where: str, is_dir: bool, options: dict) -> PretrainedConfig:
    if is_dir:
        try:
            return AutoConfig.from_pretrained(where, **options)
        except Exception as error:
            raise ModelError(
                f"directory {where}: cannot read config.json ({_first_line(error)}). {OFFLINE_HINT}"
            ) from error
    known = known_architecture(name)
    if known is not None:
        return known
    try:
        return AutoConfig.from_pretrained(where, **options)
    except Exception as error:
        logger.warning(
            "random_init: cannot fetch the config of %r (%s); using codet5-small's architecture",
            name,
            _first_line(error),
        )
        return codet5_small_config()


def _tokenizer_override(name: str, model: PreTrainedModel) -> PreTrainedTokenizerBase:
    """`model.tokenizer`: another model's tokenizer, whose ids must fit the model's embedding."""
    local = Path(name).expanduser()
    local_only = local.is_dir() or hub_unavailable() is not None
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            str(local) if local.is_dir() else name, trust_remote_code=False, local_files_only=local_only
        )
    except Exception as error:
        raise ModelError(f"cannot load the tokenizer {name!r} (model.tokenizer): {_first_line(error)}") from error
    vocab = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > vocab:
        raise ModelError(f"model.tokenizer {name!r} has {len(tokenizer)} tokens; the model embeds only {vocab}")
    return tokenizer


def _looks_like_path(name: str) -> bool:
    """A name no hub id can have: absolute, home- or dot-relative, or more than one '/'."""
    return name.startswith(("/", "~", ".", "\\")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")
