"""The real local stack for integration tests: started (and connectors registered) when it is not
already healthy, and stopped at the end only when this session started it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.settings import Settings, get_settings
from streams.stack import connectors, stack


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


def restarted_worker_pid_file(settings: Settings) -> Path:
    """Where a test that kills the worker and starts another writes the new one's pid, so that the
    session stops it with the worker it started (a file, because pytest may import this module twice)."""
    return settings.stack_home / "worker-restarted.pid"


def _worker_answers(settings: Settings) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{settings.worker_url()}/freshness", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="session")
def worker(local_stack: Settings) -> Iterator[Settings]:
    """A running `streams worker` (started by this session when none answers, and stopped after)."""
    import sys
    import time

    if _worker_answers(local_stack):
        yield local_stack
        return
    log_path = local_stack.stack_home / "worker-tests.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 180
        while not _worker_answers(local_stack):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start; see {log_path}:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield local_stack
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        _stop_restarted_worker(local_stack)


def _stop_restarted_worker(settings: Settings) -> None:
    import os
    import signal
    import time

    pid_file = restarted_worker_pid_file(settings)
    try:
        pid = int(pid_file.read_text())
        pid_file.unlink()
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(30):
            time.sleep(1)
            os.kill(pid, 0)  # raises once the process is gone
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
