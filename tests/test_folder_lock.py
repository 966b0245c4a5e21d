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
from hybridcl.folder_lock import FolderBusy, hold, live_holders, lock_path
from test_cli_errors import assert_one_line_error, smoke_args


def holding_process(folder, then: str, seed: int | None = None) -> tuple[subprocess.Popen, int]:
    """A separate process that takes the folder's lock (or a seed's), prints its pid, then runs `then` (Python)
    holding it."""
    script = f"import os, signal, sys\nfrom hybridcl.folder_lock import hold\nwith hold({str(folder)!r}, {seed}):\n"
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


def test_seed_jobs_hold_their_seeds_side_by_side_and_a_whole_folder_run_is_refused_naming_them(tmp_path):
    folder = tmp_path / "point"
    child, pid = holding_process(folder, "sys.stdin.readline()", seed=1)
    with hold(folder, seed=0):
        assert json.loads(lock_path(folder, seed=0).read_text())["pid"] == os.getpid()
        with pytest.raises(FolderBusy, match=f"seed 1 of {folder} is in use by pid {pid} on host "):
            with hold(folder, seed=1):
                pass
        with pytest.raises(FolderBusy) as busy:
            with hold(folder):
                pass
        message = str(busy.value)
        assert message.startswith(f"run folder {folder} is in use by seed 0: pid {os.getpid()} on host ")
        assert f"; seed 1: pid {pid} on host " in message
        assert set(live_holders(folder)) == {"seed 0", "seed 1"} and live_holders(folder)["seed 1"]["pid"] == pid
    child.communicate("\n", timeout=60)
    assert live_holders(folder) == {}
    with hold(folder):
        assert set(live_holders(folder)) == {"folder"}
        with pytest.raises(FolderBusy, match=f"run folder {folder} is in use by pid {os.getpid()} on host "):
            with hold(folder, seed=0):
                pass


def test_writers_that_take_turns_under_exclusive_lose_no_update(tmp_path):
    """Four processes each add 25 entries to one JSON file, read-modify-write: all 100 are there."""
    path = tmp_path / "results.json"
    path.write_text("[]")
    script = (
        "import json, sys\nfrom hybridcl.atomic import write_text\nfrom hybridcl.folder_lock import exclusive\n"
        "for i in range(25):\n    with exclusive(sys.argv[2]):\n"
        "        rows = json.loads(open(sys.argv[1]).read())\n"
        "        write_text(sys.argv[1], json.dumps(rows + [sys.argv[3] + str(i)]))\n"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(path), str(tmp_path / ".lock"), f"w{k}-"]) for k in range(4)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0, 0]
    assert sorted(json.loads(path.read_text())) == sorted(f"w{k}-{i}" for k in range(4) for i in range(25))
