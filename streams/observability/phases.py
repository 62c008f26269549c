"""Where the wall time of one piece of work went, phase by phase: a deletion request's (forget/lane.py)
and an indexing batch's (agents/write_changes.py), for their log lines and receipts."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Phases:
    """Wall seconds spent in each phase, in the order the phases first ran."""

    def __init__(self, seconds: dict[str, float] | None = None) -> None:
        self.seconds: dict[str, float] = dict(seconds or {})

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def merge(self, other: Phases) -> None:
        """Add another's seconds, phase by phase (the two halves of a batch, its rounds)."""
        for name, seconds in other.seconds.items():
            self.add(name, seconds)

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.3f}s" for name, seconds in self.seconds.items())
