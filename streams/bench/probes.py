"""What the benchmark observes the stack with: the worker's /metrics and /freshness, and the index
through search (so that "visible" means what a searcher sees, not a realtime GET)."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from streams.agents.worker_process import running_worker, worker_answers
from streams.errors import StreamsError
from streams.polling import poll
from streams.settings import Settings

Progress = Callable[[str], None]

__all__ = ["running_worker", "worker_answers"]  # re-exported for the scenarios


class BenchError(StreamsError):
    """A scenario could not run (the reason is recorded in its report)."""

    stage = "bench"


@dataclass
class MetricsSnapshot:
    """Counter and histogram samples scraped from the worker's /metrics."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def value(self, name: str, **labels: str) -> float:
        """Sum of the samples named `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= set(ls))

    def buckets(self, name: str) -> list[tuple[float, float]]:
        """Cumulative (le, count) of a histogram, summed over all its label sets, ordered by bound."""
        totals: dict[float, float] = {}
        for (sample, labels), value in self.samples.items():
            if sample == f"{name}_bucket":
                le = float(dict(labels)["le"])
                totals[le] = totals.get(le, 0.0) + value
        return sorted(totals.items())


def scrape(settings: Settings) -> MetricsSnapshot:
    try:
        with urllib.request.urlopen(f"{settings.worker_url()}/metrics", timeout=10) as response:
            text = response.read().decode("utf-8")
    except OSError as exc:
        raise BenchError(f"cannot read the worker's metrics at {settings.worker_url()}/metrics: {exc}") from exc
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return MetricsSnapshot(samples)


def restarted(before: MetricsSnapshot, after: MetricsSnapshot) -> bool:
    """Whether the worker answering `after` is another process than the one that answered `before`."""
    return before.value("process_start_time_seconds") != after.value("process_start_time_seconds")


def counter_delta(before: MetricsSnapshot, after: MetricsSnapshot, name: str, phase: str | None = None) -> float:
    """How much a counter grew (its `phase` label's sample only, if given); after a worker restart,
    what the new process counted."""
    labels = {} if phase is None else {"phase": phase}
    if restarted(before, after):
        return after.value(name, **labels)
    return after.value(name, **labels) - before.value(name, **labels)


def bucket_delta(before: MetricsSnapshot, after: MetricsSnapshot, name: str) -> list[tuple[float, float]]:
    """Histogram buckets observed between the snapshots (after a worker restart: the new process's)."""
    if restarted(before, after):
        return after.buckets(name)
    old = dict(before.buckets(name))
    return [(le, count - old.get(le, 0.0)) for le, count in after.buckets(name)]


def states(client: Any, alias: str, document_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The search-visible state records of these documents."""
    ids = sorted(set(document_ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        response = client.search(
            index=alias,
            size=500,
            query={
                "bool": {"filter": [{"term": {"kind": "state"}}, {"terms": {"document_id": ids[start : start + 500]}}]}
            },
            _source=["document_id", "root", "parts"],
        )
        for hit in response["hits"]["hits"]:
            found[hit["_source"]["document_id"]] = hit["_source"]
    return found


def visible_chunk_count(client: Any, alias: str, document_id: str) -> int:
    response = client.count(
        index=alias,
        query={
            "bool": {
                "filter": [
                    {"term": {"kind": "chunk"}},
                    {"term": {"visible": True}},
                    {"term": {"document_id": document_id}},
                ]
            }
        },
    )
    return int(response["count"])


def subject_chunk_count(client: Any, alias: str, subjects: list[str]) -> int:
    """Visible chunks that name any of these subjects: what search can still find about them."""
    response = client.count(
        index=alias,
        query={
            "bool": {
                "filter": [{"term": {"kind": "chunk"}}, {"term": {"visible": True}}, {"terms": {"subjects": subjects}}]
            }
        },
    )
    return int(response["count"])


def wait_for(predicate: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    return bool(poll(predicate, timeout_s, interval_s))


class WorkerLag:
    """How many change and deletion messages the worker's group has not yet committed."""

    def __init__(self, settings: Settings) -> None:
        from streams.observability.consumer_lag import worker_lag_reader
        from streams.settings import configured_mappings
        from streams.topics import consumed_topics

        mappings = configured_mappings(settings)
        self.topics = consumed_topics(mappings, settings)
        self.reader = worker_lag_reader(settings, mappings)

    def behind(self) -> int:
        return sum(self.reader.lag(self.topics).values())

    def __enter__(self) -> WorkerLag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.close()


def wait_caught_up(settings: Settings, progress: Progress, timeout_s: float = 900.0, slack: int = 20) -> float:
    """Wait until the worker's group has committed (almost) everything on the change and deletion
    topics; returns the seconds it took. A worker that has just started may have a backlog (changes
    written while no worker ran), and a freshness figure taken behind it would measure the backlog."""
    started = time.monotonic()
    last_report = 0.0
    with WorkerLag(settings) as lag:
        while True:
            behind = lag.behind()
            if behind <= slack:
                took = time.monotonic() - started
                progress(f"caught up: {behind} messages behind after {took:.1f}s")
                return took
            if time.monotonic() - started > timeout_s:
                raise BenchError(f"the worker is still {behind} messages behind after {timeout_s:.0f}s")
            if time.monotonic() - last_report > 10:
                progress(f"waiting for the worker to catch up: {behind} messages behind")
                last_report = time.monotonic()
            time.sleep(1.0)
