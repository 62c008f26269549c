"""FreshnessWindow and its percentiles: the figures freshness reports and `streams freshness` show."""

from __future__ import annotations

import pytest

from streams.observability.freshness import FreshnessWindow, figures
from streams.percentiles import percentile


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
    }


def test_closing_a_window_starts_a_new_one() -> None:
    window = FreshnessWindow(("wiki", "tickets", "crm"))
    for value in (0.5, 1.5, 1.0):
        window.observe("wiki", value)
    window.observe("tickets", 2.0)

    start, end, closed = window.close_window({"crm": 7.0})
    assert start <= end and start.tzinfo is not None
    by_source = {f.source: f for f in closed}
    assert [f.source for f in closed] == ["crm", "tickets", "wiki"]
    assert (by_source["wiki"].events, by_source["wiki"].p50_s, by_source["wiki"].max_s) == (3, 1.0, 1.5)
    assert by_source["tickets"].events == 1
    assert (by_source["crm"].events, by_source["crm"].oldest_unindexed_age_s) == (0, 7.0)

    next_start, _, reopened = window.close_window({})
    assert next_start == end
    assert all(f.events == 0 for f in reopened)


def test_recent_history_outlives_windows() -> None:
    window = FreshnessWindow(("wiki",), history=2)
    for value in (9.0, 1.0, 2.0):
        window.observe("wiki", value)
    window.close_window({})
    (recent,) = window.recent({"wiki": 0.25})
    assert (recent.events, recent.max_s, recent.oldest_unindexed_age_s) == (2, 2.0, 0.25)


def test_an_unknown_source_gets_its_own_figures() -> None:
    window = FreshnessWindow(("wiki",))
    window.observe("hr", 1.0)
    _, _, closed = window.close_window({})
    assert {f.source for f in closed} == {"wiki", "hr"}
