"""Whether a run folder's finished stages may be continued under a config.

A run folder is bound to the settings that change results once a stage in it has finished: a run
continued with other values for those is refused, naming each, and one with other `UNLOCKED_KEYS`
values (more seeds, another eval batch size, ...) goes on. `train.mixed_precision` is compared as the
precision it resolves to on this machine, against the one the folder's results record. What the
model and data resolve to is checked separately, against the folder's sources.json (hybridcl.sources).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hybridcl.config import Config, load_run_config, plain_config
from hybridcl.run_files import RESULTS_FILE
from hybridcl.settings import ConfigError
from hybridcl.train import resolve_mixed_precision

# Settings that change no figure of a finished stage: a run folder may be continued with other values.
# `seeds` and `strategies` add (or leave out) whole runs of one strategy and seed.
# The revisions too: what they resolve to is checked against the folder's sources.json (hybridcl.sources).
UNLOCKED_KEYS = (
    "name",
    "seeds",
    "strategies",
    "data.cache_dir",
    "eval.batch_size",
    "offline.build",
    "train.log_with",
    "model.revision",
    "data.hub_revision",
    # compared as resolved instead (_check_precision): "auto" and "bf16" train alike where auto picks bf16
    "train.mixed_precision",
)


def continues_finished_stages(cfg: Config, out: Path) -> bool:
    """Whether this run continues finished stages in its folder; refused when they come from settings
    that change results. A folder without a finished stage (say, a run that failed at start-up) is free."""
    path = out / "config.yaml"
    if not path.is_file() or next(out.rglob("stage.json"), None) is None:
        return False
    # Read as a run's config: a key added since the folder was written takes the value its run had.
    saved_config = load_run_config(path)
    saved = _result_settings(plain_config(saved_config))
    current = _result_settings(plain_config(cfg))
    differing = sorted(_diff_keys(saved, current))
    if differing:
        changes = "; ".join(f"{key}: {_lookup(saved, key)!r} there, {_lookup(current, key)!r} now" for key in differing)
        raise ConfigError(
            f"{out} holds finished stages of other settings ({changes}); use a fresh --out, or the folder's values"
        )
    _check_precision(cfg, out, saved_config)
    return True


def _check_precision(cfg: Config, out: Path, saved: Config) -> None:
    """train.mixed_precision is compared as resolved: "auto" picks by hardware (bf16 on a CPU with native
    bf16 since it pays there), so the same setting may train otherwise on this machine than the folder's."""
    recorded, now = _recorded_precision(out, saved), resolve_mixed_precision(cfg.train.mixed_precision)
    if recorded is not None and recorded != now:
        raise ConfigError(
            f"{out} holds stages trained in precision {recorded!r}; here train.mixed_precision="
            f"{cfg.train.mixed_precision!r} trains in {now!r}: use a fresh --out, or "
            f"--set 'train.mixed_precision=\"{recorded}\"'"
        )


def _recorded_precision(out: Path, saved: Config) -> str | None:
    """The precision the folder's stages trained in: as its results record it, else (a folder from before
    the record) its setting, "auto" resolved by the rule of that time: "no" off CUDA, unknown on CUDA."""
    try:
        device = json.loads((out / RESULTS_FILE).read_text())["device"]
    except (OSError, ValueError, KeyError, TypeError):
        device = {}
    if "precision" in device:
        return device["precision"]["train"]
    if saved.train.mixed_precision != "auto":
        return saved.train.mixed_precision
    return {"cpu": "no", "mps": "no"}.get(device.get("type"))


def _result_settings(config: dict) -> dict:
    """The config without `UNLOCKED_KEYS`: the settings a finished stage's figures depend on."""
    settings = copy.deepcopy(config)
    for key in UNLOCKED_KEYS:
        *parents, leaf = key.split(".")
        node = settings
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return settings


def _lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _diff_keys(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = set(a) | set(b)
        return [k for key in keys for k in _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [prefix.rstrip(".")] if a != b else []
