"""Where a run's CodeSearchNet comes from, pinned: `resolve_data` -> a DataSource naming the form, the
revision's commit (hub) or a content fingerprint (local files), and every file a task's splits read.

Three kinds, by `data.source` and `data.hub_root`:
    hub     data.source=hub, no hub_root: the hub dataset `data.hub_id` at `data.hub_revision`
            (hybridcl.data.hub: the listing and downloads go through huggingface_hub and its cache)
    local   data.source=hub with data.hub_root=DIR: a folder holding one of the forms of hybridcl.data.forms
    corpus  data.source=DIR: CodeSearchNet-schema files, e.g. a mined corpus (forms.split_path's layouts)

Nothing is downloaded here. The local kinds are fingerprinted by content (names, sizes, sha256 of each
file); the per-file hashes are cached under `data.cache_dir` by (path, size, mtime), so a second run
hashes nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from hybridcl.atomic import atomic_path
from hybridcl.data.forms import corpus_split_files, plan_files, recognise
from hybridcl.data.hub import fetch_files, resolve_hub
from hybridcl.data.pinning import DataSource
from hybridcl.data.schema import SPLITS, DataError
from hybridcl.fingerprints import file_sha256, fingerprint, list_folder
from hybridcl.settings import LANGUAGES, DataConfig

TASK_SPLITS = ("train", "valid")  # the splits a task reads
HASHES_FILE = "file-hashes.json"


def resolve_data(cfg: DataConfig, languages: Sequence[str], splits: Sequence[str] = TASK_SPLITS) -> DataSource:
    """The source `cfg` names, pinned, with the files of `languages`' `splits`; nothing is downloaded."""
    unknown = [language for language in languages if language not in LANGUAGES]
    if unknown:
        raise DataError(f"unknown language {unknown[0]!r}; known: {list(LANGUAGES)}")
    bad = [split for split in splits if split not in SPLITS]
    if bad:
        raise DataError(f"unknown split {bad[0]!r}; known: {list(SPLITS)}")
    if cfg.source != "hub":
        return _resolve_corpus(cfg, languages, splits)
    if cfg.hub_root:
        return _resolve_folder(cfg, languages, splits)
    return resolve_hub(cfg, languages, splits)


def _resolve_folder(cfg: DataConfig, languages: Sequence[str], splits: Sequence[str]) -> DataSource:
    root = Path(cfg.hub_root).expanduser()
    if not root.is_dir():
        raise DataError(
            f"data.hub_root {cfg.hub_root!r} is not a folder (it takes a local folder in one of CodeSearchNet's "
            "forms; the hub itself is data.hub_id at data.hub_revision with data.hub_root empty)"
        )
    where = str(root)
    try:
        layout = recognise(list_folder(root, skip=Path(cfg.cache_dir)), where)
    except DataError as error:
        hint = "a folder of CodeSearchNet-schema files (e.g. a mined corpus) is read with data.source=DIR instead"
        raise DataError(f"{error}; {hint}") from None
    return local_source("local", root, layout.form, plan_files(layout, languages, splits, where), cfg.cache_dir)


def _resolve_corpus(cfg: DataConfig, languages: Sequence[str], splits: Sequence[str]) -> DataSource:
    root = Path(cfg.source).expanduser()
    files = [file for language in languages for split in splits for file in corpus_split_files(root, language, split)]
    rels = sorted({file.relative_to(root).as_posix() for file in files})
    return local_source("corpus", root, "corpus", rels, cfg.cache_dir)


def local_source(kind: str, root: Path, form: str, rels: list[str], cache_dir: str) -> DataSource:
    """A local folder's files `rels`, pinned by a content fingerprint (names, sizes, sha256)."""
    files = tuple((rel, (root / rel).stat().st_size) for rel in rels)
    hashes = content_hashes(root, rels, cache_dir)
    pinned = fingerprint((rel, size, hashes[rel]) for rel, size in files)
    return DataSource(kind, str(root), None, None, pinned, form, files, True, 0)


def content_hashes(root: Path, rels: Iterable[str], cache_dir: str) -> dict[str, str]:
    """sha256 of each file, reusing those cached under `cache_dir` for the same (path, size, mtime_ns)."""
    store = Path(cache_dir, HASHES_FILE)
    try:
        known = json.loads(store.read_text()) if store.is_file() else {}
    except (OSError, ValueError):
        known = {}
    hashes, changed = {}, False
    for rel in rels:
        path = (root / rel).resolve()
        stat = path.stat()
        entry = known.get(str(path))
        if not entry or entry[:2] != [stat.st_size, stat.st_mtime_ns]:
            entry, changed = [stat.st_size, stat.st_mtime_ns, file_sha256(path)], True
            known[str(path)] = entry
        hashes[rel] = entry[2]
    if changed:
        with atomic_path(store) as tmp:
            tmp.write_text(json.dumps(known))
    return hashes


def split_files(source: DataSource, language: str, split: str) -> tuple[list[str], bool]:
    """(relative files, filter_by_language) of one language split, among exactly the files `source` names."""
    where = f"{source.id} ({source.identity()})"
    if source.form == "corpus":
        root = Path(source.id)
        rels, mixed = [file.relative_to(root).as_posix() for file in corpus_split_files(root, language, split)], False
    else:
        found, mixed = recognise(source.files, where).split_files(language, split, where)
        rels = list(found)
    named = {rel for rel, _ in source.files}
    outside = [rel for rel in rels if rel not in named]
    if outside:
        raise DataError(f"{where}: {language} {split} reads {outside[0]}, which the resolved source does not name")
    return rels, mixed


def local_paths(source: DataSource, rels: Sequence[str]) -> list[tuple[Path, str]]:
    """(local path, name for messages) of `rels`: under the root, or (hub) in the Hugging Face cache,
    downloaded first where they are not there yet."""
    if source.kind == "hub":
        return fetch_files(source, rels)
    root = Path(source.id)
    return [(root / rel, str(root / rel)) for rel in rels]


def split_identity(source: DataSource, language: str, split: str, cache_dir: str) -> list:
    """What pins one split's bytes, for the sample cache: the hub's id, commit and files, or the split's
    files with their content hashes (so a change to one split's files leaves the other's sample cached)."""
    rels, mixed = split_files(source, language, split)
    return [*files_identity(source, rels, cache_dir), mixed]


def files_identity(source: DataSource, rels: Sequence[str], cache_dir: str) -> list:
    """What pins the bytes of `rels`, files of `source`: the hub's id, commit and their names, or their
    names with their content hashes."""
    if source.kind == "hub":
        return [source.kind, source.id, source.commit, source.form, list(rels)]
    hashes = content_hashes(Path(source.id), rels, cache_dir)
    return [source.form, [[rel, hashes[rel]] for rel in rels]]
