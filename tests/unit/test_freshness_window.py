"""FreshnessWindow and its percentiles: the figures freshness reports and `streams freshness` show."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from streams.agents.process_changes import ChangeProcessor
from streams.agents.write_changes import WriteResult
from streams.observability import metrics
from streams.observability.freshness import FreshnessWindow, figures, freshness_phase, observe_freshness
from streams.percentiles import percentile
from streams.records import PartChange, RawMessage, RoutedChange
from tests.unit.part_changes import part_change


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.5) == 7.0
    assert percentile([1.0, 2.0], 0.0) == 1.0


def test_percentile_sorts_its_values() -> None:
    # Was the bench's interpolated percentile's test: p50 of four values was 2.5, by nearest rank it is 2.0.
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 0.0) == 1.0
    assert percentile(values, 0.5) == 2.0
    assert percentile(values, 1.0) == 4.0


def test_percentile_of_nothing_is_an_error_and_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 1.01)
    with pytest.raises(ValueError):
        percentile([1.0], -0.01)


def test_figures_sort_their_values() -> None:
    result = figures("wiki", [3.0, 1.0, 2.0], oldest_unindexed_age_s=4.5)
    assert (result.events, result.p50_s, result.p99_s, result.max_s) == (3, 2.0, 3.0, 3.0)
    assert result.oldest_unindexed_age_s == 4.5


def test_figures_of_an_idle_source_have_no_percentiles() -> None:
    result = figures("crm", [])
    assert result.to_json() == {
        "source": "crm",
        "events": 0,
        "p50_s": None,
        "p95_s": None,
        "p99_s": None,
        "max_s": None,
        "oldest_unindexed_age_s": 0.0,
        "snapshot_events": 0,
        "snapshot_p50_s": None,
        "snapshot_p95_s": None,
        "snapshot_p99_s": None,
        "snapshot_max_s": None,
    }


def test_closing_a_window_starts_a_new_one() -> None:
    window = FreshnessWindow(("wiki", "tickets", "crm"))
    for value in (0.5, 1.5, 1.0):
        window.observe("wiki", value)
    window.observe("tickets", 2.0)
    window.unindexed([_committed_ago("crm", 70)])

    start, end, closed = window.close_window()
    assert start <= end and start.tzinfo is not None
    by_source = {f.source: f for f in closed}
    assert [f.source for f in closed] == ["crm", "tickets", "wiki"]
    assert (by_source["wiki"].events, by_source["wiki"].p50_s, by_source["wiki"].max_s) == (3, 1.0, 1.5)
    assert by_source["tickets"].events == 1
    assert by_source["crm"].events == 0
    assert by_source["crm"].oldest_unindexed_age_s == pytest.approx(70, abs=5)

    next_start, _, reopened = window.close_window()
    assert next_start == end
    assert all(f.events == 0 for f in reopened)


def test_recent_history_outlives_windows() -> None:
    window = FreshnessWindow(("wiki",), history=2)
    for value in (9.0, 1.0, 2.0):
        window.observe("wiki", value)
    window.close_window()
    (recent,) = window.recent()
    assert (recent.events, recent.max_s, recent.oldest_unindexed_age_s) == (2, 2.0, 0.0)


def test_an_unknown_source_gets_its_own_figures() -> None:
    window = FreshnessWindow(("wiki",))
    window.observe("hr", 1.0)
    _, _, closed = window.close_window()
    assert {f.source for f in closed} == {"wiki", "hr"}


# -- phases: live changes apart from snapshot reads and the backlog ------------------------------

STARTED = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)


def _change(*, snapshot: bool = False, committed: datetime = STARTED + timedelta(seconds=5)) -> PartChange:
    return part_change("tickets/ticket/1", "tickets", commit_ts=committed, snapshot=snapshot)


def test_a_streamed_change_after_the_start_is_live() -> None:
    assert freshness_phase(_change(), STARTED) == "live"


def test_a_snapshot_read_is_not_live_whenever_it_was_committed() -> None:
    assert freshness_phase(_change(snapshot=True), STARTED) == "snapshot"


def test_a_change_committed_before_the_worker_started_is_backlog() -> None:
    assert freshness_phase(_change(committed=STARTED - timedelta(seconds=1)), STARTED) == "snapshot"


def test_snapshot_figures_are_kept_apart_from_live_ones() -> None:
    # The case: an initial snapshot of old rows must not turn the live p99 into minutes.
    window = FreshnessWindow(("tickets",), started_at=STARTED)
    for value in (0.4, 0.6, 0.8):
        window.observe("tickets", value)
    for value in (87.0, 13.0):
        window.observe("tickets", value, "snapshot")
    (closed,) = window.close_window()[2]
    assert (closed.events, closed.p99_s, closed.max_s) == (3, 0.8, 0.8)
    assert (closed.snapshot_events, closed.snapshot_p50_s, closed.snapshot_max_s) == (2, 13.0, 87.0)
    (recent,) = window.recent()
    assert (recent.events, recent.snapshot_events) == (3, 2)


def test_observing_a_change_labels_the_histogram_with_its_phase() -> None:
    window = FreshnessWindow(("unit-phase",), started_at=STARTED)
    change = part_change("unit-phase/t/1", "t", commit_ts=STARTED - timedelta(minutes=5), snapshot=True)
    histogram = metrics.FRESHNESS.labels(source="unit-phase", table="t", operation="upsert", phase="snapshot")
    before = histogram._sum.get()
    assert observe_freshness(window, change, STARTED + timedelta(seconds=1)) == "snapshot"
    assert histogram._sum.get() - before == 301.0
    (figures_,) = window.recent()
    assert (figures_.events, figures_.snapshot_events) == (0, 1)


# -- the oldest unindexed change, per source -----------------------------------------------------


def _committed_ago(source: str, seconds: float) -> PartChange:
    return part_change(f"{source}/t/1", "t", commit_ts=datetime.now(UTC) - timedelta(seconds=seconds))


def _gauge(source: str) -> float | None:
    return REGISTRY.get_sample_value("streams_oldest_unindexed_event_age_seconds", {"source": source})


def test_a_batch_that_mixes_sources_gives_each_source_its_own_oldest_age() -> None:
    """A batch of the repartition topic holds several sources' changes: each source's gauge shows its
    own oldest change while the batch is written, and 0 once it is searchable."""
    during: dict[str, float | None] = {}

    class Watching:
        async def write(self, changes: list[PartChange], turn: object = None) -> WriteResult:
            during.update({source: _gauge(source) for source in ("unit-mix-a", "unit-mix-b", "unit-mix-c")})
            return WriteResult(applied=list(changes), searchable_at=datetime.now(UTC))

    window = FreshnessWindow(("unit-mix-a", "unit-mix-b", "unit-mix-c"))
    batch = [_committed_ago("unit-mix-a", 30), _committed_ago("unit-mix-b", 300), _committed_ago("unit-mix-a", 60)]

    async def no_dead_letters(origin: object, record: object) -> None:
        raise AssertionError(record)

    records = [RoutedChange(RawMessage("t", 0, n, None, None), c.source, c.commit_ts, c) for n, c in enumerate(batch)]
    asyncio.run(ChangeProcessor(Watching(), no_dead_letters, window).process(records))  # type: ignore[arg-type]
    assert during["unit-mix-a"] == pytest.approx(60, abs=5)
    assert during["unit-mix-b"] == pytest.approx(300, abs=5)
    assert not during["unit-mix-c"]  # nothing of it unindexed
    assert _gauge("unit-mix-a") == _gauge("unit-mix-b") == 0


def test_a_changes_freshness_is_cut_into_route_queue_and_write() -> None:
    from streams.observability.freshness import observe_stages

    def count(stage: str) -> float:
        return REGISTRY.get_sample_value("streams_stage_seconds_count", {"lane": "live", "stage": stage}) or 0.0

    def total(stage: str) -> float:
        return REGISTRY.get_sample_value("streams_stage_seconds_sum", {"lane": "live", "stage": stage}) or 0.0

    before = {stage: (count(stage), total(stage)) for stage in ("route", "queue", "write")}
    committed = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    base = committed.timestamp()
    changes = [(committed, base + 0.5), (committed + timedelta(seconds=1), base + 3.0)]
    worst = observe_stages("live", changes, base + 4.0, committed + timedelta(seconds=5))
    assert worst == {"route": 2.0, "queue": 3.5, "write": 1.0}
    assert {stage: count(stage) - before[stage][0] for stage in before} == {"route": 2, "queue": 2, "write": 2}
    assert total("queue") - before["queue"][1] == pytest.approx(3.5 + 1.0)

    # A source clock ahead of Kafka's is counted as 0, and nothing written observes no write stage.
    worst = observe_stages("live", [(committed, base - 1.0)], base, None)
    assert worst == {"route": 0.0, "queue": 1.0}
