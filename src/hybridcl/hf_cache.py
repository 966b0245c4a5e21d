"""The local Hugging Face hub cache as huggingface_hub lays it out: a repository's folder, the commit a
revision names, a commit's snapshot, and placing a folder there for offline replicas and tests.

    <cache>/<models|datasets>--<org>--<name>/
        blobs/<sha256>                  each file's bytes, once
        snapshots/<commit>/<path>       relative links to the blobs
        refs/<revision>                 the commit a branch or tag names (a revision with a slash is a
                                        nested path: refs/refs/convert/parquet)

The cache is `huggingface_hub.constants.HF_HUB_CACHE`, read at call time (tests and benchmarks point it
elsewhere), unless a `cache_dir` is given. `repo_type` is huggingface_hub's: "model" or "dataset".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

from hybridcl.atomic import write_text
from hybridcl.fingerprints import file_sha256, list_folder

COMMIT = re.compile(r"[0-9a-f]{40}")


def repo_folder(repo_id: str, repo_type: str, cache_dir: str | Path | None = None) -> Path:
    """The repository's folder in the cache `cache_dir` (the hub cache by default), e.g. `models--org--name`."""
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    root = constants.HF_HUB_CACHE if cache_dir is None else cache_dir
    return Path(root) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)


def snapshot_folder(repo_id: str, repo_type: str, commit: str) -> Path:
    """The hub cache's folder of the repository's files at `commit`."""
    return repo_folder(repo_id, repo_type) / "snapshots" / commit


def cached_commit(repo_id: str, repo_type: str, revision: str) -> str | None:
    """The commit the hub cache knows `revision` by (a 40-hex commit names itself), or None."""
    if COMMIT.fullmatch(revision):
        return revision
    refs = repo_folder(repo_id, repo_type) / "refs"
    for ref in (refs / revision, refs / quote(revision, safe="")):
        if ref.is_file():
            return ref.read_text(encoding="utf-8").strip()
    return None


def write_ref(repo_id: str, repo_type: str, revision: str, commit: str, cache_dir: str | Path | None = None) -> None:
    """`refs/<revision>` -> `commit` in the cache (atomically, only when it says otherwise); a commit needs no ref."""
    if revision == commit:
        return
    ref = repo_folder(repo_id, repo_type, cache_dir) / "refs" / revision
    if not ref.is_file() or ref.read_text(encoding="utf-8").strip() != commit:
        write_text(ref, commit)


def place_in_cache(
    folder: str | Path,
    cache_dir: str | Path,
    repo_id: str,
    repo_type: str,
    revision: str = "main",
    commit: str | None = None,
) -> str:
    """Put the files below `folder` into the cache `cache_dir` as `repo_id`'s revision `revision`:
    content-addressed blobs, `snapshots/<commit>/<path>` links to them and `refs/<revision>`. `commit`
    defaults to a hash of the files' paths and contents, so the same folder always gets the same one;
    returns it."""
    listing = list_folder(Path(folder))
    hashes = {rel: file_sha256(Path(folder, rel)) for rel, _ in listing}
    commit = commit or hashlib.sha1(json.dumps(sorted(hashes.items())).encode()).hexdigest()
    repo = repo_folder(repo_id, repo_type, cache_dir)
    for rel, _ in listing:
        blob = repo / "blobs" / hashes[rel]
        if not blob.exists():
            blob.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(folder, rel), blob)
        link = repo / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    write_ref(repo_id, repo_type, revision, commit, cache_dir)
    return commit
