"""One live process per run folder: `hybridcl run` and every sweep point hold a lock on their folder while they
work, and a second process on a held folder stops in one line that names the holder. When the seeds of one
point run as separate jobs (`hybridcl sweep --jobs-per seed`), each job holds its seed instead: the folder's
lock shared, its seed's lock alone, so seed jobs run side by side and a whole-folder run waits for none of them.

The locks are `fcntl.flock` on `.<folder name>.lock` and `.<folder name>.seed<k>.lock` beside the folder
(beside, so that a run refused before any work still leaves no folder, as the stand-in build keeps
`.<out>.build/`). The kernel drops a lock when its process ends, however it ends (kill -9 included), so a lock
left by a dead process is simply taken: nothing to time out, no stale-pid guessing. On NFS, Linux carries flock
as a byte-range lock to the server, so it holds across nodes; a lost node's lock is dropped when the server's
lease on it expires (NFSv4: about 90 s). Lustre needs its `flock` mount option for that (`localflock` locks one
node only). flock rather than POSIX `lockf`: closing any other descriptor of the file in the same process would
drop a POSIX lock. Not the `filelock` package: it truncates the file when it opens it, and the file names the
holder (host, pid, job, since).

`exclusive` serializes short critical sections between processes that share a folder (the seed jobs' writes
of the one results file, the last point's sweep summary). Under torchrun only the main process (RANK 0) holds
the locks, for the run's whole process group.
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

BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)


class FolderBusy(UserError):
    """Another live process holds the run folder (or the seed of it this process would run)."""


def lock_path(folder: str | os.PathLike, seed: int | None = None) -> Path:
    folder = Path(folder).absolute()
    return folder.parent / f".{folder.name}{'' if seed is None else f'.seed{seed}'}.lock"


@contextmanager
def hold(folder: str | os.PathLike, seed: int | None = None) -> Iterator[dict | None]:
    """Hold the run folder's lock (or, given `seed`, that seed's within it) for the block; raise FolderBusy at
    once when a live process holds it. Yields the holder of a lock that its process left when it died."""
    if not is_main_process():
        yield None
        return
    folder_path = lock_path(folder)
    with _open_lock(folder_path) as folder_fd:
        if seed is None:
            _take(
                folder_fd,
                folder_path,
                fcntl.LOCK_EX,
                lambda: f"run folder {folder} is in use by {_who(folder, folder_fd)}",
            )
            with _named(folder_fd) as previous:
                yield previous
            return
        busy = lambda: f"run folder {folder} is in use by {describe(read_holder(folder_fd))}"  # noqa: E731
        _take(folder_fd, folder_path, fcntl.LOCK_SH, busy)
        seed_path = lock_path(folder, seed)
        with _open_lock(seed_path) as seed_fd:
            busy = lambda: f"seed {seed} of {folder} is in use by {describe(read_holder(seed_fd))}"  # noqa: E731
            _take(seed_fd, seed_path, fcntl.LOCK_EX, busy)
            with _named(seed_fd) as previous:
                yield previous


@contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[None]:
    """Wait for, then hold, the lock file `path` for the block (every process; torchrun's ranks included)."""
    with _open_lock(Path(path)) as fd:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield


def live_holders(folder: str | os.PathLike) -> dict[str, dict | None]:
    """Who works in the folder now: {"folder": holder} for a whole-folder run, {"seed <k>": holder} per seed job,
    {} when nobody does. Probing takes each free lock for an instant."""
    folder = Path(folder)
    path = lock_path(folder)
    if not path.exists():
        return {}
    with _open_lock(path) as fd:
        if not _free(fd, fcntl.LOCK_SH):
            return {"folder": read_holder(fd)}
    holders = {}
    for seed_path in sorted(path.parent.glob(f".{folder.name}.seed*.lock")):
        with _open_lock(seed_path) as fd:
            if not _free(fd, fcntl.LOCK_EX):
                holders[f"seed {seed_path.name.rsplit('.seed', 1)[1].removesuffix('.lock')}"] = read_holder(fd)
    return holders


def holder() -> dict:
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {"host": socket.gethostname(), "pid": os.getpid(), "job": job_id(), "since": since}


def job_id() -> str | None:
    """The scheduler's id of this process's job: Slurm's (`<array>_<task>` in an array), submitit's local one."""
    env = os.environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or env.get("SUBMITIT_LOCAL_JOB_ID")


def read_holder(fd: int) -> dict | None:
    try:
        value = json.loads(os.pread(fd, 4096, 0))
    except ValueError:  # empty (released, or not yet written) or cut
        return None
    return value if isinstance(value, dict) else None


def describe(holder: dict | None) -> str:
    if not holder:
        return "another process (its host and pid are not yet written)"
    job = f" (job {holder['job']})" if holder.get("job") else ""
    return f"pid {holder.get('pid')} on host {holder.get('host')}{job} since {holder.get('since')}"


# ------------------------------------------------------------------------------------- helpers


@contextmanager
def _open_lock(path: Path) -> Iterator[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def _take(fd: int, path: Path, mode: int, busy_message) -> None:
    if not _try_flock(fd, mode):
        raise FolderBusy(f"{busy_message()}; wait for it to finish, or stop it (lock {path})")


def _free(fd: int, mode: int) -> bool:
    """Whether the lock could be taken now (it is not kept)."""
    if not _try_flock(fd, mode):
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def _try_flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in BUSY:
            raise
        return False
    return True


@contextmanager
def _named(fd: int) -> Iterator[dict | None]:
    """Write this process into the held lock file for the block; yields the holder found there (a dead one's)."""
    previous = read_holder(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder()).encode(), 0)
    try:
        yield previous
    finally:
        os.ftruncate(fd, 0)  # released by its holder: nobody to name


def _who(folder: str | os.PathLike, fd: int) -> str:
    """The exclusive holder written in the folder's lock, else the seed jobs that hold it shared."""
    named = read_holder(fd)
    if named:
        return describe(named)
    seeds = {what: who for what, who in live_holders(folder).items() if what != "folder"}
    if not seeds:
        return describe(None)
    return "; ".join(f"{what}: {describe(who)}" for what, who in seeds.items())
