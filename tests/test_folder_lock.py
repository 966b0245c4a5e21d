"""One live process per run folder (hybridcl.folder_lock): a held folder is refused in one line naming its
holder, a lock whose process died is taken over, and a refused run writes nothing. Two real `hybridcl run`
processes started at once, and kill -9 followed by a restart, are in tests/test_restarts.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from hybridcl.cli import main
from hybridcl.folder_lock import FolderBusy, hold, lock_path
from test_cli_errors import assert_one_line_error, smoke_args


def holding_process(folder, then: str) -> tuple[subprocess.Popen, int]:
    """A separate process that takes the folder's lock, prints its pid, then runs `then` (Python) holding it."""
    script = f"import os, signal, sys\nfrom hybridcl.folder_lock import hold\nwith hold({str(folder)!r}):\n"
    script += f"    print(os.getpid(), flush=True)\n    {then}\n"
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return child, int(child.stdout.readline())


def test_the_lock_lies_beside_the_folder_and_names_its_holder_while_held(tmp_path):
    folder = tmp_path / "run"
    with hold(folder) as dead_holder:
        assert dead_holder is None and not folder.exists()  # a refused or failed run leaves no folder
        written = json.loads(lock_path(folder).read_text())
        assert (written["host"], written["pid"]) == (socket.gethostname(), os.getpid()) and written["since"]
        with pytest.raises(FolderBusy) as busy:  # flock conflicts between two opens, even in one process
            with hold(folder):
                pass
    message = str(busy.value)
    assert f"run folder {folder} is in use by pid {os.getpid()} on host {socket.gethostname()} since " in message
    assert str(lock_path(folder)) in message
    assert lock_path(folder).read_text() == ""  # released: nobody to name
    with hold(folder) as dead_holder:
        assert dead_holder is None  # a released lock is free, not taken over


def test_a_live_holder_in_another_process_is_named_and_its_lock_freed_when_it_ends(tmp_path):
    folder = tmp_path / "run"
    child, pid = holding_process(folder, "sys.stdin.readline()")
    with pytest.raises(FolderBusy, match=f"is in use by pid {pid} on host {socket.gethostname()} since "):
        with hold(folder):
            pass
    child.communicate("\n", timeout=60)
    assert child.returncode == 0
    with hold(folder) as dead_holder:
        assert dead_holder is None


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    child, pid = holding_process(folder, "os.kill(os.getpid(), signal.SIGKILL)")
    assert child.wait(timeout=60) == -signal.SIGKILL
    with hold(folder) as dead_holder:
        assert dead_holder["pid"] == pid and dead_holder["host"] == socket.gethostname()
        assert json.loads(lock_path(folder).read_text())["pid"] == os.getpid()


def test_a_run_on_a_held_folder_exits_2_in_one_line_and_writes_nothing(smoke_assets, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.log").write_text("the holder's log\n")
    with hold(out):
        status = main(smoke_args(smoke_assets, out))
    line = assert_one_line_error(capsys, status, f"run folder {out} is in use by pid {os.getpid()}")
    assert "wait for it to finish, or stop it" in line
    assert [p.name for p in out.iterdir()] == ["run.log"] and (out / "run.log").read_text() == "the holder's log\n"
