"""The frozen base model: a Hugging Face seq2seq model + tokenizer, from the hub or a local directory.

`load_base(ModelConfig)` is the only way the rest of the code gets a base. It returns the model in
eval mode with every parameter frozen (`requires_grad=False`); the hybrid model trains only what a
strategy declares.

Sources, in order:
- `model.name` is an existing directory: read it (written by `save_pretrained`, e.g. the stand-in base
  of `hybridcl base build`), never touching the network.
- otherwise `model.name` is a hub id (default `Salesforce/codet5-small`). Offline (`HF_HUB_OFFLINE=1`,
  or the hub endpoint does not answer a 3-second connection probe) only the local Hugging Face cache
  is tried, so a missing model fails in well under a second instead of after ~25 s of retries.
- `model.random_init=true`: the architecture without trained weights, seeded. For codet5-small (or a
  hub name whose config cannot be fetched) that is `CODET5_SMALL`, carried here, so parameter counts
  and timings of the real shape need no network. For a directory it is the directory's config.json.
  The tokenizer is then the directory's / cached one if there is one, else None.

Weights are read from safetensors only and remote code is never run. Failures raise `ModelError`,
whose message names the offline alternatives (`hybridcl base build`, `--set model.name=DIR`).
"""

from __future__ import annotations

import copy
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    T5Config,
)

from hybridcl.config import ModelConfig
from hybridcl.errors import UserError

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

HUB_PROBE_TIMEOUT_S = 3.0

OFFLINE_HINT = (
    "Offline, build the stand-in base with `hybridcl base build --corpus DIR --out DIR` and use it with "
    "`--set model.name=DIR`; or point `--set model.name=/path/to/dir` at any local directory written by "
    "save_pretrained (config.json, model.safetensors and the tokenizer files); or, for parameter counts and "
    "timings only, `--set model.random_init=true` builds codet5-small's architecture with random weights."
)


class ModelError(UserError, RuntimeError):
    """A base model that cannot be loaded: unknown name, hub unreachable, missing or unsafe files."""


def codet5_small_config() -> T5Config:
    """A fresh copy of `CODET5_SMALL`."""
    return copy.deepcopy(CODET5_SMALL)


def load_base(model_cfg: ModelConfig, *, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase | None]:
    """(model, tokenizer) for `model_cfg`; the model is float32, in eval mode, with all parameters frozen.

    The tokenizer is None only with `random_init=True` when no tokenizer is found locally.
    `seed` seeds the random initialisation (the global torch RNG is left as it was).
    """
    name = str(model_cfg.name).strip()
    if not name:
        raise ModelError(f"model.name is empty. {OFFLINE_HINT}")
    local = Path(name).expanduser()
    if local.is_dir():
        source, local_only = str(local), True
    elif local.exists():
        raise ModelError(f"model.name {name!r} is a file, not a model directory. {OFFLINE_HINT}")
    elif _looks_like_path(name):
        raise ModelError(f"model.name {name!r}: no such directory. {OFFLINE_HINT}")
    else:
        offline_reason = _hub_unavailable()
        source, local_only = name, offline_reason is not None
        if offline_reason:
            logger.info("%s; looking for %r in the local Hugging Face cache only", offline_reason, name)

    if model_cfg.random_init:
        model, tokenizer = _random_init(name, source, is_dir=local.is_dir(), local_only=local_only, seed=seed)
    else:
        where = f"directory {source}" if local.is_dir() else f"hub model {name!r}"
        if local_only and not local.is_dir():
            where += f" ({offline_reason}: local cache only)"
        model, tokenizer = _pretrained(source, where, is_dir=local.is_dir(), local_only=local_only)
    if model_cfg.tokenizer:
        tokenizer = _tokenizer_override(model_cfg.tokenizer, model)
    return freeze(model), tokenizer


def freeze(model: PreTrainedModel) -> PreTrainedModel:
    """Eval mode, no gradients for any parameter; returns the same model."""
    model.eval()
    model.requires_grad_(False)
    return model


def _pretrained(source: str, where: str, *, is_dir: bool, local_only: bool):
    if is_dir:
        missing = [f for f in ("config.json",) if not (Path(source) / f).is_file()]
        if missing:
            raise ModelError(f"{where}: missing {', '.join(missing)}; not a save_pretrained directory. {OFFLINE_HINT}")
        if (
            not any(Path(source).glob("*.safetensors"))
            and not (Path(source) / "model.safetensors.index.json").is_file()
        ):
            raise ModelError(
                f"{where}: no model.safetensors (only safetensors weights are read, never pickled .bin files). {OFFLINE_HINT}"
            )
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(
            source,
            use_safetensors=True,
            trust_remote_code=False,
            local_files_only=local_only,
            dtype=torch.float32,
            # transformers 5.23 looks for a PEFT adapter_config.json on the hub without passing local_files_only
            # on (~25 s of retries when the hub is unreachable), unless told here.
            adapter_kwargs={"local_files_only": local_only},
        )
    except Exception as error:  # OSError (missing/unreachable), ValueError (not seq2seq, bad id), ...
        raise ModelError(f"cannot load the model from {where}: {_first_line(error)}. {OFFLINE_HINT}") from error
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, local_files_only=local_only)
    except Exception as error:
        raise ModelError(f"cannot load the tokenizer from {where}: {_first_line(error)}. {OFFLINE_HINT}") from error
    return model, tokenizer


def _random_init(name: str, source: str, *, is_dir: bool, local_only: bool, seed: int):
    if is_dir:
        try:
            config = AutoConfig.from_pretrained(source, trust_remote_code=False, local_files_only=True)
        except Exception as error:
            raise ModelError(
                f"directory {source}: cannot read config.json ({_first_line(error)}). {OFFLINE_HINT}"
            ) from error
    elif name == CODET5_SMALL_NAME:
        config = codet5_small_config()
    else:
        try:
            config = AutoConfig.from_pretrained(source, trust_remote_code=False, local_files_only=local_only)
        except Exception as error:
            logger.warning(
                "random_init: cannot fetch the config of %r (%s); using codet5-small's architecture",
                name,
                _first_line(error),
            )
            config = codet5_small_config()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModelForSeq2SeqLM.from_config(config, trust_remote_code=False, dtype=torch.float32)
    except ValueError as error:
        raise ModelError(f"{name!r}: not a seq2seq architecture ({_first_line(error)}). {OFFLINE_HINT}") from error
    tokenizer = None
    if is_dir or local_only is False or _in_cache(name):
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, local_files_only=local_only)
        except Exception as error:
            logger.info("random_init: no tokenizer for %r (%s)", name, _first_line(error))
    return model, tokenizer


def _tokenizer_override(name: str, model: PreTrainedModel) -> PreTrainedTokenizerBase:
    """`model.tokenizer`: another model's tokenizer, whose ids must fit the model's embedding."""
    local = Path(name).expanduser()
    local_only = local.is_dir() or _hub_unavailable() is not None
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


def _offline_env() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, read now (huggingface_hub reads them once, at import)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return any(str(flag).strip().upper() in {"1", "ON", "YES", "TRUE"} for flag in flags) or bool(
        constants.HF_HUB_OFFLINE
    )


def _hub_unavailable() -> str | None:
    """Why the hub cannot be used (offline mode set, or its endpoint refuses a TCP connection within 3 s), or None.

    The probe replaces huggingface_hub's ~25 s of retries on an unreachable hub with one quick check.
    """
    if _offline_env():
        return "offline mode (HF_HUB_OFFLINE)"
    if any(os.environ.get(var) for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # reachability goes through the proxy; let the hub client find out
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return None
    try:
        with socket.create_connection((host, port), timeout=HUB_PROBE_TIMEOUT_S):
            return None
    except OSError as error:
        return f"hub {constants.ENDPOINT} unreachable ({error})"


def _in_cache(name: str) -> bool:
    from huggingface_hub import constants

    folder = "models--" + name.replace("/", "--")
    return (Path(constants.HF_HUB_CACHE) / folder).is_dir()


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")
