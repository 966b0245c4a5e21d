"""Where a run's CodeSearchNet comes from, pinned: `resolve_data` -> a DataSource naming the form, the
revision's commit (hub) or a content fingerprint (local files), and every file a task's splits read.

Three kinds, by `data.source` and `data.hub_root`:
    hub     data.source=hub, no hub_root: the hub dataset `data.hub_id` at `data.hub_revision`
            (hybridcl.data.hub: the listing and downloads go through huggingface_hub and its cache)
    local   data.source=hub with data.hub_root=DIR: a folder holding one of the forms of hybridcl.data.forms
    corpus  data.source=DIR: CodeSearchNet-schema files, e.g. a mined corpus (csn.split_path's layouts)

Nothing is downloaded here. The local kinds are fingerprinted by content (names, sizes, sha256 of each
file); the per-file hashes are cached under `data.cache_dir` by (path, size, mtime), so a second run
hashes nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from hybridcl.atomic import atomic_path
from hybridcl.config import LANGUAGES, DataConfig
from hybridcl.data.forms import Layout, recognise
from hybridcl.data.schema import SPLITS, DataError
from hybridcl.fingerprints import file_sha256, fingerprint

TASK_SPLITS = ("train", "valid")  # the splits a task reads
HASHES_FILE = "file-hashes.json"


@dataclass(frozen=True)
class DataSource:
    kind: str  # "hub" | "local" (a data.hub_root folder) | "corpus" (data.source is a local path)
    id: str  # hub id, or the root / source path
    revision: str | None  # hub: the revision read (under data.hub_revision=auto, the one it chose), else None
    commit: str | None  # hub: the 40-hex commit that revision resolved to, else None
    fingerprint: str | None  # local kinds: "sha256:<hex>" over the files' names, sizes and content hashes
    form: str  # "parquet-conversion" | "push-to-hub-parquet" | "release-zip" | "release-jsonl" | "corpus"
    files: tuple[tuple[str, int], ...]  # (path relative to the root, bytes) of every file the splits read
    cached: bool  # hub: all of `files` are in the local Hugging Face cache; local kinds: True
    download_bytes: int  # bytes still to download (hub), else 0

    def as_record(self) -> dict:
        """The source as plain JSON values, for a run's results."""
        record = asdict(self)
        record["files"] = [list(entry) for entry in self.files]
        return record

    @classmethod
    def from_record(cls, record: dict) -> DataSource:
        """The DataSource `as_record()` gave (as read back from JSON)."""
        return cls(**{**record, "files": tuple((path, size) for path, size in record["files"])})

    def identity(self) -> str:
        """What pins the bytes read: form @ commit (hub) or form @ content fingerprint (local)."""
        return f"{self.form}@{self.commit or self.fingerprint}"


def format_bytes(count: int) -> str:
    size, unit = float(count), "B"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            break
        size /= 1000
    return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"


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
    from hybridcl.data.hub import resolve_hub

    return resolve_hub(cfg, languages, splits)


def plan_files(layout: Layout, languages: Iterable[str], splits: Iterable[str], where: str) -> list[str]:
    """Every file `layout` reads for `languages`' `splits`, each once, in a stable order."""
    planned = [
        file for language in languages for split in splits for file in layout.split_files(language, split, where)[0]
    ]
    return sorted(set(planned))


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
    return _local_source("local", root, layout.form, plan_files(layout, languages, splits, where), cfg.cache_dir)


def _resolve_corpus(cfg: DataConfig, languages: Sequence[str], splits: Sequence[str]) -> DataSource:
    from hybridcl.data.csn import corpus_split_files

    root = Path(cfg.source).expanduser()
    files = [file for language in languages for split in splits for file in corpus_split_files(root, language, split)]
    rels = sorted({file.relative_to(root).as_posix() for file in files})
    return _local_source("corpus", root, "corpus", rels, cfg.cache_dir)


def _local_source(kind: str, root: Path, form: str, rels: list[str], cache_dir: str) -> DataSource:
    files = tuple((rel, (root / rel).stat().st_size) for rel in rels)
    hashes = content_hashes(root, rels, cache_dir)
    pinned = fingerprint((rel, size, hashes[rel]) for rel, size in files)
    return DataSource(kind, str(root), None, None, pinned, form, files, True, 0)


def list_folder(root: Path, skip: Path | None = None) -> list[tuple[str, int]]:
    """(relative path, bytes) of every file below `root`, links followed; hidden folders and `skip` left out."""
    skipped = skip.resolve() if skip is not None else None
    listing = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        subfolders[:] = sorted(
            name for name in subfolders if not name.startswith(".") and Path(folder, name).resolve() != skipped
        )
        for name in names:
            path = Path(folder, name)
            if path.is_file():
                listing.append((path.relative_to(root).as_posix(), path.stat().st_size))
    return sorted(listing)


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
        from hybridcl.data.csn import corpus_split_files

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
        from hybridcl.data.hub import fetch_files

        return fetch_files(source, rels)
    root = Path(source.id)
    return [(root / rel, str(root / rel)) for rel in rels]


def split_identity(source: DataSource, language: str, split: str, cache_dir: str) -> list:
    """What pins one split's bytes, for the sample cache: the hub's id, commit and files, or the split's
    files with their content hashes (so a change to one split's files leaves the other's sample cached)."""
    rels, mixed = split_files(source, language, split)
    if source.kind == "hub":
        return [source.kind, source.id, source.commit, source.form, rels, mixed]
    hashes = content_hashes(Path(source.id), rels, cache_dir)
    return [source.form, [[rel, hashes[rel]] for rel in rels], mixed]
