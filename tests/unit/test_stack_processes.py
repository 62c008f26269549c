"""The stack's process checks (psutil): a running process is alive, a killed one ends."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from streams.polling import poll
from streams.stack.runner import StackError, _open_the_way, pid_alive, pid_cmdline, wait_ended


def test_a_process_is_alive_until_it_is_killed() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        assert pid_alive(process.pid)
        # Read until the child's command line is there: under load /proc can show it empty for a moment
        # right after the fork.
        assert "time.sleep(30)" in poll(lambda: pid_cmdline(process.pid), 10, 0.05)
        assert not wait_ended(process.pid, 0.3)
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert wait_ended(process.pid, 5)
        assert not pid_alive(process.pid)
        assert pid_cmdline(process.pid) == ""
    finally:
        process.kill()
        process.wait()


def test_a_zombie_counts_as_ended() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    assert wait_ended(process.pid, 10)  # exited, not yet reaped: a zombie
    process.wait()


def test_a_private_directory_on_the_way_is_opened_for_the_servers_user_and_said(tmp_path: Path) -> None:
    private = tmp_path / "private"  # what `mktemp -d` makes for a fresh clone: mode 700
    home = private / "checkout" / ".stack"
    home.mkdir(parents=True)
    for directory in (tmp_path, *tmp_path.parents):  # pytest's own base is private too; only `private` is asserted
        if directory.stat().st_uid == os.geteuid():
            directory.chmod(stat.S_IMODE(directory.stat().st_mode) | stat.S_IXOTH)
    private.chmod(0o700)
    said: list[str] = []
    someone_else = os.geteuid() + 4242
    _open_the_way(home, someone_else, someone_else, said.append)
    assert stat.S_IMODE(private.stat().st_mode) == 0o701  # enter, not list
    assert [line for line in said if line.startswith(f"{private}:")]


def test_a_directory_that_is_not_ours_is_refused_with_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private = tmp_path / "private"
    home = private / ".stack"
    home.mkdir(parents=True)
    private.chmod(0o700)
    someone_else = os.geteuid() + 4242
    monkeypatch.setattr(os, "geteuid", lambda: someone_else + 1)  # as if another user owned every directory
    with pytest.raises(StackError, match=f"cannot enter .* {private}"):
        _open_the_way(home, someone_else, someone_else, lambda _line: None)
    assert stat.S_IMODE(private.stat().st_mode) == 0o700  # left as it was
