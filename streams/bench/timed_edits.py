"""Edits made at a steady pace while the index is polled until each one is searchable: the load and the
stopwatch that the freshness scenarios share (`steady`, through the sources' databases, `applications`,
through the applications' own APIs, and the backfill's live probes, which run until stopped). Each
scenario says how it makes an edit and how it asks the index whether an edit shows."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Generic, Protocol, TypeVar

from streams.bench.probes import Progress


class TimedEdit(Protocol):
    committed_at: float  # when the source answered that it committed the edit (epoch seconds)
    seen_at: float | None  # when a poll found it searchable; None until then


E = TypeVar("E", bound=TimedEdit)


def freshness(edits: Iterable[TimedEdit]) -> list[float]:
    """Seconds from commit to searchable, for the edits that became searchable."""
    return [edit.seen_at - edit.committed_at for edit in edits if edit.seen_at is not None]


class EditLoad(Generic[E]):
    """The edits that the load's threads made, and the ones that failed (counted, not retried)."""

    def __init__(self) -> None:
        self.made: list[E] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopped = threading.Event()

    def start(self, name: str, count: int | None, interval_s: float, make: Callable[[int], E], label: str = "") -> None:
        """A thread that calls `make(n)` for n in range(count), or on until `stop()` when count is None,
        `interval_s` apart from its start; `make` returns once the source committed the edit. A failed
        edit is counted (under `label`) and the load goes on."""

        prefix = f"{label}: " if label else ""

        def issue() -> None:
            start = time.monotonic()
            for n in range(count) if count is not None else itertools.count():
                delay = start + n * interval_s - time.monotonic()
                if self._stopped.wait(max(delay, 0.0)):
                    return
                try:
                    edit = make(n)
                except Exception as exc:  # a failed edit is counted, the load goes on
                    with self._lock:
                        self.failures.append(f"{prefix}{type(exc).__name__}: {exc}")
                    continue
                with self._lock:
                    self.made.append(edit)

        thread = threading.Thread(target=issue, name=f"bench-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        """No new edit from now on; one that a thread is making is kept when its source answers."""
        self._stopped.set()

    def wait_searchable(
        self,
        searchable: Callable[[list[E]], Iterable[E]],
        progress: Progress,
        describe: Callable[[int, int], str],
        *,
        drain_s: float,
        interval_s: float = 0.2,
    ) -> None:
        """Poll every `interval_s` while the load runs and until every edit is searchable or `drain_s`
        passed after the load ended (or was stopped: an edit whose source never answers does not hold
        the wait). `searchable(pending)` gives the pending edits the index shows now; each is stamped
        when that poll returned, so that no edit is counted fresher than it was.
        `describe(made, searchable)` is the progress line, every 5 seconds."""
        deadline: float | None = None
        last_report = time.monotonic()
        while True:
            loading = any(thread.is_alive() for thread in self._threads)  # before the snapshot: it holds all
            with self._lock:
                made = list(self.made)
            pending = [edit for edit in made if edit.seen_at is None]
            if pending:
                found = list(searchable(pending))
                now = time.time()
                for edit in found:
                    edit.seen_at = now
            if not loading or self._stopped.is_set():
                deadline = deadline or time.monotonic() + drain_s
                drained = not loading and all(edit.seen_at is not None for edit in made)
                if drained or time.monotonic() > deadline:
                    return
            if time.monotonic() - last_report > 5:
                progress(describe(len(made), sum(edit.seen_at is not None for edit in made)))
                last_report = time.monotonic()
            time.sleep(interval_s)
