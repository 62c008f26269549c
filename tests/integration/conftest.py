"""The real local stack for integration tests: started (and connectors registered) when it is not
already healthy, and stopped at the end only when this test run started it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.agents.worker_process import running_worker
from streams.settings import Settings, get_settings
from streams.stack import connectors, stack
from streams.stack.watch_connectors import background_watch

# The test stack's time windows, shorter than the defaults users get: the tests prove each mechanism
# (a purge after its window, a stall seen past its threshold, a stalled connector healed), not the
# default values, and waiting out a minute twice would be most of the suite's time. Set before any
# settings are read, so that this process, the worker the session starts and the connectors' watch
# agree; a value exported by whoever runs the tests wins.
TEST_WINDOWS = {
    # A test kills the worker inside the window, after the first receipt: it needs some seconds.
    "STREAMS_PURGE_WINDOW_S": "15",
    # Above the connectors' 5 s heartbeat interval with room for a busy worker's batch.
    "STREAMS_CAPTURE_AGE_THRESHOLD_S": "12",
    # Three heartbeat intervals without one; a fresh task's slower start has watch_restart_backoff_s.
    "STREAMS_WATCH_STALL_S": "15",
}
for _name, _value in TEST_WINDOWS.items():
    os.environ.setdefault(_name, _value)


def _progress(line: str) -> None:
    print(line, flush=True)


@pytest.fixture(scope="session")
def local_stack() -> Iterator[Settings]:
    settings = get_settings()
    started = stack.up(settings, _progress)  # a no-op for servers that are already running
    try:
        connectors.register(settings, _progress)
        yield settings
    finally:
        if started:
            stack.down(settings, _progress, only=started)


@pytest.fixture(scope="session", autouse=True)
def connectors_watch(local_stack: Settings) -> Iterator[None]:
    """`streams connectors watch` for the whole session, as `make demo` runs it: a connector that fails
    or stalls during a test (a broker restart in the fault suite) is healed as in production."""
    with background_watch(local_stack.stack_home / "watch-tests.log"):
        yield


def restarted_worker_pid_file(settings: Settings) -> Path:
    """Where a test that kills the worker and starts another writes the new one's pid, so that the
    session stops it with the worker it started (a file, because pytest may import this module twice)."""
    return settings.stack_home / "worker-restarted.pid"


def start_detached_worker(settings: Settings, log_name: str) -> None:
    """Start `streams worker` in its own session (a test killed the running one); the session stops it at
    the end through the pid file."""
    import subprocess
    import sys

    from streams.settings import PROJECT_ROOT

    with open(settings.stack_home / log_name, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            start_new_session=True,
        )
    restarted_worker_pid_file(settings).write_text(str(process.pid))


@pytest.fixture(scope="session")
def worker(local_stack: Settings) -> Iterator[Settings]:
    """A running `streams worker` (started by this test run when none answers, and stopped after)."""
    log_path = local_stack.stack_home / "worker-tests.log"
    with running_worker(local_stack, _progress, log_path) as started:
        try:
            yield local_stack
        finally:
            if started:
                _stop_restarted_worker(local_stack)


def _stop_restarted_worker(settings: Settings) -> None:
    import os
    import signal

    from streams.stack.runner import wait_ended

    pid_file = restarted_worker_pid_file(settings)
    try:
        pid = int(pid_file.read_text())
        pid_file.unlink()
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        if not wait_ended(pid, 30):
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
