"""The real local stack for integration tests: started (and connectors registered) when it is not
already healthy, and stopped at the end only when this session started it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

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


# Workers that tests started to replace one they killed: stopped with the session's own worker.
RESTARTED_WORKERS: list[subprocess.Popen[bytes]] = []


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
        for running in [process, *RESTARTED_WORKERS]:
            running.terminate()
            try:
                running.wait(timeout=30)
            except subprocess.TimeoutExpired:
                running.kill()
