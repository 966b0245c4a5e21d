"""Files and their content: a folder's listing and content hashes, how a run pins a local model or data
folder, and how a build records its output."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(files: Iterable[tuple[str, int, str]]) -> str:
    """ "sha256:<hex>" over (name, size, sha256) rows: equal for equal bytes under equal names, wherever they lie."""
    return "sha256:" + hashlib.sha256(json.dumps([list(row) for row in files]).encode()).hexdigest()


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
