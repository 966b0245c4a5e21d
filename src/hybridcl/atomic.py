"""Atomic file writes: readers (and a resumed run) see either the old file or the whole new one.

A process killed mid-write leaves a `.<name>.<random>.tmp` file beside the target; `remove_temp_files`
clears them when a run starts again.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hybridcl.faults import kill_point


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends cleanly it is renamed onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        kill_point(f"write {path.name}")
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results are for every user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_temp_files(folder: str | os.PathLike) -> int:
    """Delete the temporary files that killed atomic writes left below `folder`; returns how many."""
    stale = [path for path in Path(folder).rglob(".*.tmp") if path.is_file()]
    for path in stale:
        path.unlink()
    return len(stale)
