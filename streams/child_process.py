"""A `streams` command run as a child process for as long as a `with` block lasts (the worker that a
command or test needs, the connector watch that `make demo` runs), its output in a log file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def streams_command(
    args: Sequence[str],
    log_path: Path,
    stop_timeout_s: float,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m streams.cli ARGS` until the block ends: then SIGTERM, and SIGKILL after
    `stop_timeout_s` (a worker finishing its batch and committing needs longer than the watch). `env` is
    the child's whole environment (None: this process's)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
