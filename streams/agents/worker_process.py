"""A `streams worker` for the commands and tests that need one: the running one when it answers,
else one started here (and stopped when done)."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from streams.child_process import streams_command
from streams.errors import StreamsError
from streams.polling import poll
from streams.settings import Settings


def worker_answers(settings: Settings) -> bool:
    """Whether a worker is ready: /freshness answers only once its runtime (model, index) is built."""
    try:
        with urllib.request.urlopen(f"{settings.worker_url()}/freshness", timeout=3) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def running_worker(
    settings: Settings, progress: Callable[[str], None], log_path: Path, timeout_s: float = 240.0
) -> Iterator[bool]:
    """A worker that answers; yields whether it was started here."""
    if worker_answers(settings):
        progress(f"using the running worker at {settings.worker_url()}")
        yield False
        return
    progress(f"no worker answers at {settings.worker_url()}: starting one (log {log_path})")
    with streams_command(["worker"], log_path, stop_timeout_s=30) as process:

        def answers_or_exited() -> bool:
            if process.poll() is not None:
                raise StreamsError(f"the worker exited with {process.returncode}; see {log_path}", stage="worker")
            return worker_answers(settings)

        if not poll(answers_or_exited, timeout_s, 1.0):
            message = f"the worker did not answer within {timeout_s:.0f} s; see {log_path}"
            raise StreamsError(message, stage="worker")
        progress("worker started")
        try:
            yield True
        finally:
            progress("worker stopped")
