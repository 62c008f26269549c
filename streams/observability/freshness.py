"""Freshness over a window, per source: the numbers a freshness report and `streams freshness` show.

Freshness is reported in two phases, because they answer different questions:
- `live`: a change committed while the worker was running and streamed from the log. This is the
  promise ("searchable within seconds") and the figure shown by default.
- `snapshot`: a row read by a Debezium snapshot (`op=r`: the initial snapshot, an incremental
  snapshot such as `streams verify --repair`'s) or a change committed before the worker started (the
  backlog a starting worker catches up on). Its "freshness" measures how old the source row was when
  it was read or how long the worker was away, not how fast the pipeline is, so it is shown apart.
  Every change of the backfill lane (agents/lanes.py: snapshot reads and bursts of bulk changes) is
  counted here too: bulk work is never part of the live promise.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal

from streams.observability import metrics
from streams.percentiles import percentile
from streams.records import PartChange

Phase = Literal["live", "snapshot"]
Lane = Literal["live", "backfill"]  # the indexing lane a change went through (agents/lanes.py)
PHASES: tuple[Phase, ...] = ("live", "snapshot")


def freshness_phase(change: PartChange, worker_started_at: datetime) -> Phase:
    """`snapshot` for a snapshot read or a change committed before the worker started, else `live`."""
    if change.snapshot or change.commit_ts < worker_started_at:
        return "snapshot"
    return "live"


@dataclass
class SourceFigures:
    """Live figures first (the promise); the snapshot phase's figures apart, prefixed `snapshot_`."""

    source: str
    events: int
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    max_s: float | None
    oldest_unindexed_age_s: float = 0.0
    snapshot_events: int = 0
    snapshot_p50_s: float | None = None
    snapshot_p95_s: float | None = None
    snapshot_p99_s: float | None = None
    snapshot_max_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _percentiles(values: list[float]) -> tuple[int, float | None, float | None, float | None, float | None]:
    ordered = sorted(values)
    if not ordered:
        return 0, None, None, None, None
    return (
        len(ordered),
        percentile(ordered, 0.50),
        percentile(ordered, 0.95),
        percentile(ordered, 0.99),
        ordered[-1],
    )


def figures(
    source: str, values: list[float], oldest_unindexed_age_s: float = 0.0, snapshot_values: list[float] | None = None
) -> SourceFigures:
    events, p50, p95, p99, top = _percentiles(values)
    s_events, s_p50, s_p95, s_p99, s_top = _percentiles(snapshot_values or [])
    return SourceFigures(
        source, events, p50, p95, p99, top, oldest_unindexed_age_s, s_events, s_p50, s_p95, s_p99, s_top
    )


class FreshnessWindow:
    """Freshness samples of the current reporting window, plus a longer recent history for the CLI,
    and per source the oldest change read but not yet searchable.

    `started_at` is the worker's start: changes committed before it are the snapshot phase. The
    gauge OLDEST_UNINDEXED_AGE reads its ages from here when it is scraped.
    """

    def __init__(self, sources: tuple[str, ...], history: int = 10_000, started_at: datetime | None = None) -> None:
        self.sources = sources
        self.history = history
        self.started_at = started_at or datetime.now(UTC)
        self._lock = threading.Lock()
        self._window: dict[tuple[str, Phase], list[float]] = {}
        self._recent: dict[tuple[str, Phase], deque[float]] = {}
        # (source, lane) -> the oldest commit time read, not yet searchable
        self._unindexed: dict[tuple[str, Lane], datetime] = {}
        self._gauged: set[str] = set()
        self.window_start = datetime.now(UTC)
        self._gauge(sources)

    def _gauge(self, sources: Iterable[str]) -> None:
        for source in set(sources) - self._gauged:
            metrics.OLDEST_UNINDEXED_AGE.labels(source=source).set_function(
                partial(self.oldest_unindexed_age_s, source)
            )
            self._gauged.add(source)

    def unindexed(self, changes: Iterable[PartChange], lane: Lane = "live") -> None:
        """A batch of `lane` was read: each source's oldest change in it is unindexed until `indexed`."""
        with self._lock:
            for change in changes:
                oldest = self._unindexed.get((change.source, lane))
                if oldest is None or change.commit_ts < oldest:
                    self._unindexed[(change.source, lane)] = change.commit_ts
            sources = [source for source, _ in self._unindexed]
        self._gauge(sources)

    def indexed(self, sources: Iterable[str], lane: Lane = "live") -> None:
        with self._lock:
            for source in sources:
                self._unindexed.pop((source, lane), None)

    def oldest_unindexed_age_s(self, source: str) -> float:
        """Now - the source commit of the oldest change read but not yet searchable, in either lane; 0
        when none is."""
        with self._lock:
            times = [at for (s, _), at in self._unindexed.items() if s == source]
        return max((datetime.now(UTC) - min(times)).total_seconds(), 0.0) if times else 0.0

    def observe(self, source: str, freshness_s: float, phase: Phase = "live") -> None:
        with self._lock:
            self._window.setdefault((source, phase), []).append(freshness_s)
            self._recent.setdefault((source, phase), deque(maxlen=self.history)).append(freshness_s)

    def _sources(self, samples: dict[tuple[str, Phase], Any]) -> list[str]:
        return sorted(set(self.sources) | {source for source, _ in samples})

    def close_window(self) -> tuple[datetime, datetime, list[SourceFigures]]:
        """The figures of the window that ends now; a new window starts."""
        with self._lock:
            sources = self._sources(self._window)
        ages = {s: self.oldest_unindexed_age_s(s) for s in sources}
        with self._lock:
            start, end = self.window_start, datetime.now(UTC)
            window = self._window
            result = [
                figures(s, window.get((s, "live"), []), ages.get(s, 0.0), window.get((s, "snapshot"), []))
                for s in self._sources(window)
            ]
            self._window = {}
            self.window_start = end
        return start, end, result

    def recent(self) -> list[SourceFigures]:
        with self._lock:
            sources = self._sources(self._recent)
        ages = {s: self.oldest_unindexed_age_s(s) for s in sources}
        with self._lock:
            recent = self._recent
            return [
                figures(
                    s,
                    list(recent.get((s, "live"), ())),
                    ages.get(s, 0.0),
                    list(recent.get((s, "snapshot"), ())),
                )
                for s in self._sources(recent)
            ]


def observe_stages(
    lane: Lane, changes: Iterable[tuple[datetime, float]], started_at: float, searchable_at: datetime | None
) -> dict[str, float]:
    """Cut each change's freshness into its stages (metrics.STAGE_SECONDS) and observe them: `changes`
    holds each change's source commit time and the epoch second it was routed at; the batch started at
    `started_at` (epoch seconds) and became searchable at `searchable_at` (None: nothing was written).
    Returns each stage's largest value in the batch, for its log line. A clock that runs behind another
    (the source's, Kafka's) gives a negative span: it is counted as 0."""
    worst: dict[str, float] = {}
    histograms = {stage: metrics.STAGE_SECONDS.labels(lane=lane, stage=stage) for stage in ("route", "queue", "write")}

    def observe(stage: str, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        histograms[stage].observe(seconds)
        worst[stage] = max(worst.get(stage, 0.0), seconds)

    write_s = None if searchable_at is None else searchable_at.timestamp() - started_at
    for commit_ts, routed_at in changes:
        observe("route", routed_at - commit_ts.timestamp())
        observe("queue", started_at - routed_at)
        if write_s is not None:
            observe("write", write_s)
    return worst


def observe_freshness(
    window: FreshnessWindow, change: PartChange, searchable_at: datetime, phase: Phase | None = None
) -> Phase:
    """Record one applied change's freshness in the histogram and the window, under its phase (the
    change's own, unless the caller names one: the backfill lane's changes are all `snapshot`)."""
    freshness_s = (searchable_at - change.commit_ts).total_seconds()
    phase = phase or freshness_phase(change, window.started_at)
    operation = "delete" if change.deleted else "upsert"
    metrics.FRESHNESS.labels(source=change.source, table=change.table, operation=operation, phase=phase).observe(
        max(freshness_s, 0.0)
    )
    window.observe(change.source, freshness_s, phase)
    return phase
