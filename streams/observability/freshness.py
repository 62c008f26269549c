"""Freshness over a window, per source: the numbers a freshness report and `streams freshness` show."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.percentiles import percentile


@dataclass
class SourceFigures:
    source: str
    events: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None
    oldest_unindexed_age_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def figures(source: str, values: list[float], oldest_unindexed_age_s: float = 0.0) -> SourceFigures:
    ordered = sorted(values)
    if not ordered:
        return SourceFigures(source, 0, None, None, None, None, oldest_unindexed_age_s)
    return SourceFigures(
        source,
        len(ordered),
        percentile(ordered, 0.50),
        percentile(ordered, 0.95),
        percentile(ordered, 0.99),
        ordered[-1],
        oldest_unindexed_age_s,
    )


class FreshnessWindow:
    """Freshness samples of the current reporting window, plus a longer recent history for the CLI."""

    def __init__(self, sources: tuple[str, ...], history: int = 10_000) -> None:
        self.sources = sources
        self._lock = threading.Lock()
        self._window: dict[str, list[float]] = {source: [] for source in sources}
        self._recent: dict[str, deque[float]] = {source: deque(maxlen=history) for source in sources}
        self.window_start = datetime.now(UTC)

    def observe(self, source: str, freshness_s: float) -> None:
        with self._lock:
            self._window.setdefault(source, []).append(freshness_s)
            self._recent.setdefault(source, deque(maxlen=10_000)).append(freshness_s)

    def close_window(self, oldest_age: dict[str, float]) -> tuple[datetime, datetime, list[SourceFigures]]:
        """The figures of the window that ends now; a new window starts."""
        with self._lock:
            start, end = self.window_start, datetime.now(UTC)
            result = [figures(s, values, oldest_age.get(s, 0.0)) for s, values in sorted(self._window.items())]
            self._window = {source: [] for source in self._window}
            self.window_start = end
        return start, end, result

    def recent(self, oldest_age: dict[str, float]) -> list[SourceFigures]:
        with self._lock:
            return [figures(s, list(values), oldest_age.get(s, 0.0)) for s, values in sorted(self._recent.items())]
