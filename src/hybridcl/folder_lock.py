"""One live process per run folder: `hybridcl run` and every sweep point hold a lock on their folder while they
work, and a second process on a held folder stops in one line that names the holder.

The lock is `fcntl.flock` on `.<folder name>.lock` beside the folder (beside, so that a run refused before any
work still leaves no folder, as the stand-in build keeps `.<out>.build/`). The kernel drops the lock when its
process ends, however it ends (kill -9 included), so a lock left by a dead process is simply taken: nothing
to time out, no stale-pid guessing. On NFS, Linux carries flock as a byte-range lock to the server, so it
holds across nodes; a lost node's lock is dropped when the server's lease on it expires (NFSv4: about 90 s).
Lustre needs its `flock` mount option for that (`localflock` locks one node only). flock rather than POSIX
`lockf`: closing any other descriptor of the file in the same process would drop a POSIX lock. Not the
`filelock` package: it truncates the file when it opens it, and the file names the holder (host, pid, since).

Under torchrun only the main process (RANK 0) holds it, for the run's whole process group.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from hybridcl.errors import UserError
from hybridcl.logs import is_main_process


class FolderBusy(UserError):
    """Another live process holds the run folder."""


def lock_path(folder: str | os.PathLike) -> Path:
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}.lock"


@contextmanager
def hold(folder: str | os.PathLike) -> Iterator[dict | None]:
    """Hold the run folder's lock for the block; raise FolderBusy at once when a live process holds it.
    Yields the holder of a lock that its process left behind when it died (None when there was none)."""
    if not is_main_process():
        yield None
        return
    path = lock_path(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise FolderBusy(
                f"run folder {folder} is in use by {describe(read_holder(fd))}; wait for it to finish, or stop it "
                f"(lock {path})"
            ) from None
        previous = read_holder(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder()).encode(), 0)
        try:
            yield previous
        finally:
            os.ftruncate(fd, 0)  # released by its holder: nobody to name
    finally:
        os.close(fd)  # closing releases the lock


def holder() -> dict:
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": since}


def read_holder(fd: int) -> dict | None:
    try:
        value = json.loads(os.pread(fd, 4096, 0))
    except ValueError:  # empty (released, or not yet written) or cut
        return None
    return value if isinstance(value, dict) else None


def describe(holder: dict | None) -> str:
    if not holder:
        return "another process (its host and pid are not yet written)"
    return f"pid {holder.get('pid')} on host {holder.get('host')} since {holder.get('since')}"
