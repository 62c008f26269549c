"""Capture age per source: how old the newest event the worker received from a source is.

Freshness is measured on the events that arrive; a connector that stops capturing produces no
events, so freshness stays perfect while the index silently falls behind. Each connector's
heartbeat.action.query commits a row every few seconds, so a live source always has a recent
event: "now minus the commit time of the newest event received" is small while capture flows and
grows without bound once any hop (database, Debezium, Connect, Kafka, this worker) stops.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


class CaptureClock:
    """The newest commit time received per source. Before a source's first event its age counts from
    the clock's creation (the worker's start): a source that never delivers is a stall too."""

    def __init__(self, sources: Iterable[str], clock: Clock = _now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        started = clock()
        self._newest: dict[str, datetime] = {source: started for source in sources}
        self._seen: set[str] = set()

    def received(self, source: str, commit_ts: datetime) -> None:
        with self._lock:
            if source not in self._newest:
                # Not a configured source (an event another worker's configuration routed): reporting
                # it would make /health wait for a source this worker never reads.
                return
            if source not in self._seen or commit_ts > self._newest[source]:
                self._newest[source] = commit_ts
                self._seen.add(source)

    def age_s(self, source: str) -> float:
        with self._lock:
            newest = self._newest.get(source)
        if newest is None:
            return float("inf")
        return max((self._clock() - newest).total_seconds(), 0.0)

    def ages(self) -> dict[str, float]:
        return {source: self.age_s(source) for source in sorted(self._newest)}


@dataclass(frozen=True)
class LagReading:
    at: datetime
    events: int


@dataclass(frozen=True)
class LaneLag:
    """The indexing lane's backlog as last read: how many events, how fast it drains (events/s, None
    when unknown: one reading, or a backlog that did not shrink), and how long since it last shrank."""

    events: int
    drain_rate: float | None
    unchanged_s: float

    @property
    def drain_s(self) -> float | None:
        return self.events / self.drain_rate if self.drain_rate else None

    def to_json(self) -> dict[str, object]:
        drain_s = self.drain_s
        return {
            "events": self.events,
            "drain_rate_per_s": None if self.drain_rate is None else round(self.drain_rate, 3),
            "drain_s": None if drain_s is None else round(drain_s, 1),
            "unchanged_s": round(self.unchanged_s, 1),
        }


class LagHistory:
    """The consumer lag of the indexing lane (change, heartbeat and routed topics), one reading per
    freshness interval. Heartbeats queue behind a backlog like any change, so a capture age past the
    threshold means a stall only once this lane is caught up, or its backlog stops shrinking."""

    def __init__(self, clock: Clock = _now) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._previous: LagReading | None = None
        self._latest: LagReading | None = None
        self._progress_at: datetime | None = None

    def observe(self, events: int) -> None:
        now = self._clock()
        with self._lock:
            previous = self._latest
            if previous is None or events == 0 or events < previous.events:
                self._progress_at = now
            self._previous, self._latest = previous, LagReading(now, events)

    def current(self) -> LaneLag | None:
        """None before the first reading. The time since the backlog last shrank runs on while no
        reading arrives (the lag reader failing), so a silent reader ends up a stall too."""
        with self._lock:
            previous, latest, progress_at = self._previous, self._latest, self._progress_at
        if latest is None or progress_at is None:
            return None
        rate = None
        if previous is not None:
            elapsed = (latest.at - previous.at).total_seconds()
            drained = previous.events - latest.events
            if elapsed > 0 and drained > 0:
                rate = drained / elapsed
        unchanged_s = max((self._clock() - progress_at).total_seconds(), 0.0)
        return LaneLag(latest.events, rate, unchanged_s)


Status = Literal["ok", "behind", "stalled"]


@dataclass(frozen=True)
class Health:
    """`status`: ok; behind (a source's capture age is past the threshold, but its heartbeats are
    queued behind a backlog that drains); stalled (past the threshold while the worker is caught up,
    or its backlog has not shrunk for the threshold). Only a stall is unhealthy."""

    status: Status
    reasons: list[str]
    capture_age_s: dict[str, float]
    sources: dict[str, Status]
    lag: LaneLag | None

    @property
    def healthy(self) -> bool:
        return self.status != "stalled"

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "healthy": self.healthy,
            "reasons": self.reasons,
            "capture_age_s": {source: round(age, 3) for source, age in self.capture_age_s.items()},
            "sources": dict(self.sources),
            "lag": None if self.lag is None else self.lag.to_json(),
        }


def _verdict(source: str, age: float, threshold_s: float, lag: LaneLag | None) -> tuple[Status, str | None]:
    if age <= threshold_s:
        return "ok", None
    silent = f"no event captured for {age:.1f} s (threshold {threshold_s:g} s)"
    if lag is None:
        return "stalled", f"source {source}: capture stalled: {silent}; the worker's lag is not known yet"
    if lag.events == 0:
        return "stalled", f"source {source}: capture stalled: {silent} although the worker is caught up"
    if lag.unchanged_s >= threshold_s:
        return "stalled", (
            f"source {source}: capture stalled: {silent}, and the worker's backlog of {lag.events} events"
            f" has not shrunk for {lag.unchanged_s:.0f} s"
        )
    drain_s = lag.drain_s
    drain = "time to drain not known yet" if drain_s is None else f"about {drain_s:.0f} s to drain"
    return "behind", (
        f"source {source}: behind by {lag.events} events, {drain} ({silent}: its heartbeats are queued behind them)"
    )


def capture_health(ages: dict[str, float], threshold_s: float, lag: LaneLag | None = None) -> Health:
    """Each source's verdict (see Health) from its capture age and the indexing lane's lag; the
    reasons name each source that is not ok."""
    sources: dict[str, Status] = {}
    reasons = []
    for source, age in sorted(ages.items()):
        status, reason = _verdict(source, age, threshold_s, lag)
        sources[source] = status
        if reason is not None:
            reasons.append(reason)
    overall: Status = "ok"
    if "stalled" in sources.values():
        overall = "stalled"
    elif "behind" in sources.values():
        overall = "behind"
    return Health(overall, reasons, dict(ages), sources, lag)
