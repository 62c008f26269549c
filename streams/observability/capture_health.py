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
class Health:
    healthy: bool
    reasons: list[str]
    capture_age_s: dict[str, float]

    def to_json(self) -> dict[str, object]:
        return {
            "healthy": self.healthy,
            "reasons": self.reasons,
            "capture_age_s": {source: round(age, 3) for source, age in self.capture_age_s.items()},
        }


def capture_health(ages: dict[str, float], threshold_s: float) -> Health:
    """Unhealthy when any source's capture age is above the threshold; the reasons name each one."""
    reasons = [
        f"source {source}: no event captured for {age:.1f} s (threshold {threshold_s:g} s)"
        for source, age in sorted(ages.items())
        if age > threshold_s
    ]
    return Health(not reasons, reasons, dict(ages))
