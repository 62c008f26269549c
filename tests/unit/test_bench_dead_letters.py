"""A benchmark scenario says when the worker gave up on changes while it ran: figures measured over
changes that never reached the index must not pass for good ones."""

from __future__ import annotations

from typing import Any

import pytest

from streams.bench.commands import _print_errors, dead_letters
from streams.bench.probes import MetricsSnapshot


def snapshot(started: float, **by_stage: float) -> MetricsSnapshot:
    samples = {("process_start_time_seconds", ()): started}
    samples.update({("streams_dead_letters_total", (("stage", stage),)): n for stage, n in by_stage.items()})
    return MetricsSnapshot(samples)


def test_the_changes_dead_lettered_during_a_scenario_are_counted_by_stage() -> None:
    assert dead_letters(snapshot(1.0, index=3, decode=1), snapshot(1.0, index=259, decode=1)) == {"index": 256}


def test_a_scenario_without_dead_letters_reports_none() -> None:
    assert dead_letters(snapshot(1.0, index=3), snapshot(1.0, index=3)) == {}
    assert dead_letters(None, snapshot(1.0)) is None  # the worker did not answer: unknown, not zero


def test_a_worker_restarted_during_the_scenario_counts_from_zero() -> None:
    assert dead_letters(snapshot(1.0, index=300), snapshot(2.0, index=5)) == {"index": 5}


def test_the_summary_names_the_dead_letters(capsys: pytest.CaptureFixture[str]) -> None:
    report: dict[str, Any] = {"forget": {"dead_letters": {"index": 256.0}}, "steady": {"dead_letters": {}}}
    _print_errors(report, ["forget", "steady"])
    assert capsys.readouterr().out.splitlines() == [
        "forget       DEAD LETTERS during the scenario: 256 at index (see the worker's log)"
    ]
