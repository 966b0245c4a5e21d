"""Content hashes of files: how a run pins a local model or data folder, and how a build records its output."""

from __future__ import annotations

import hashlib
import json
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
