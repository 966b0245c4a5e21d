"""Where a run's base model and data come from: resolved before anything loads, recorded, checked on continuing.

`resolve_sources(cfg)` asks `hybridcl.model.base.resolve_model` and `hybridcl.data.source.resolve_data`
where the config's model and data are (hub commit or local content fingerprint, form, files and
sizes, cached or not) without downloading or loading anything. The runner prints one line per source,
keeps them in the run folder (`sources.json`, written once the folder has no finished stage) and in the
results file (`sources`). A run continued later on another commit or other bytes is refused in one line:
its finished stages were trained on what `sources.json` names.
"""

from __future__ import annotations

import json
from pathlib import Path

from hybridcl.atomic import write_text
from hybridcl.config import Config
from hybridcl.data.pinning import DataSource, format_bytes
from hybridcl.data.tasks import resolve_task_sources
from hybridcl.model.base import ModelSource, resolve_model
from hybridcl.settings import ConfigError

SOURCES_FILE = "sources.json"
Sources = dict[str, ModelSource | DataSource]  # "model", then "data" (CodeSearchNet) or "data <task>" per task


def resolve_sources(cfg: Config) -> Sources:
    return {"model": resolve_model(cfg.model), **resolve_data_sources(cfg)}


def resolve_data_sources(cfg: Config) -> dict[str, DataSource]:
    """The files of every task's training split and of the split its evaluations score (eval.split)."""
    return resolve_task_sources(cfg.data, cfg.tasks, ("train", cfg.eval.split))


def records(sources: Sources) -> dict[str, dict]:
    return {key: source.as_record() for key, source in sources.items()}


def describe(record: dict) -> str:
    """One line: `Salesforce/codet5-small @ main (commit c2c65bb7106c), form pytorch_model.bin: 7 file(s), 242.3 MB, cached`."""
    where = record.get("name") or record["id"]
    if record["kind"] == "random_init":
        return f"{where}, random weights (model.random_init): no weights read"
    if record.get("revision"):
        where += f" @ {record['revision']}"
    if record.get("commit") or record.get("fingerprint"):
        pinned = record.get("commit") or record["fingerprint"]
        where += f" ({'commit' if record.get('commit') else 'content'} {pinned.split(':')[-1][:12]})"
    files = record["files"]
    size = f"{len(files)} file(s), {format_bytes(sum(size for _, size in files))}"
    if record["kind"] != "hub":
        state = "local"
    else:
        state = "cached" if record["cached"] else f"{format_bytes(record['download_bytes'])} to download"
    return f"{where}, form {record['form']}: {size}, {state}"


# The setting that pins each source's hub revision (free to change in a run folder: the identity is checked).
REVISION_KEYS = {"model": "model.revision", "data": "data.hub_revision"}  # a stream's datasets share data.hub_revision


def check_continuation(out: Path, sources: Sources) -> None:
    """Refuse to continue a run folder whose finished stages were trained on another model or data."""
    path = out / SOURCES_FILE
    saved = json.loads(path.read_text()) if path.is_file() else {}
    for key, source in sources.items():
        before = saved.get(key, {})
        if before.get("identity") not in (None, source.identity()):
            raise ConfigError(
                f"{out} holds stages trained on {key} {before['identity']}, and the config now reads {key} "
                f"{source.identity()}; {_how_to_return(key, before, path)}, or use a fresh --out"
            )


def _how_to_return(key: str, before: dict, path: Path) -> str:
    if before.get("kind") == "hub" and before.get("commit") and key in REVISION_KEYS:
        return f"continue with --set {REVISION_KEYS[key]}={before['commit']} (recorded in {path})"
    return f"restore the files recorded in {path}"


def record_sources(out: Path, sources: Sources) -> None:
    """`sources.json`: what the run folder's stages are trained on (written while none has finished, or
    once for a folder that predates the record)."""
    saved = {key: {**source.as_record(), "identity": source.identity()} for key, source in sources.items()}
    write_text(out / SOURCES_FILE, json.dumps(saved, indent=1) + "\n")
