"""The stack's process checks (psutil): a running process is alive, a killed one ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from streams.polling import poll
from streams.stack.runner import StackError, check_enterable, pid_alive, pid_cmdline, service_user, wait_ended


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


def test_a_stack_home_the_service_user_cannot_enter_is_refused_with_the_directory_named() -> None:
    if os.geteuid() != 0:
        pytest.skip("the servers run as a service user only when the stack is started as root")
    user = service_user()
    assert user is not None
    # Not pytest's tmp_path: its own base directory is private (mode 700) too.
    with tempfile.TemporaryDirectory() as base:
        Path(base).chmod(0o755)
        private = Path(base) / "private"  # what `mktemp -d` makes for a fresh clone: mode 700
        home = private / "checkout" / ".stack"
        home.mkdir(parents=True)
        private.chmod(0o700)
        with pytest.raises(StackError, match=f"cannot enter {private} .*chmod o\\+x {private}"):
            check_enterable(home, user)
        private.chmod(0o755)
        check_enterable(home, user)  # every directory on the way can be entered now
