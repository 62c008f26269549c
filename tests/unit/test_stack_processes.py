"""The stack's process checks (psutil): a running process is alive, a killed one ends."""

from __future__ import annotations

import signal
import subprocess
import sys

from streams.stack.runner import pid_alive, pid_cmdline, wait_ended


def test_a_process_is_alive_until_it_is_killed() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        assert pid_alive(process.pid)
        assert "time.sleep(30)" in pid_cmdline(process.pid)
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
