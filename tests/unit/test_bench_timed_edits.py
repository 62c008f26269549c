"""The freshness scenarios' load and stopwatch: every edit is made, a failed one is counted and the load
goes on, an edit is timed from its commit to the poll that found it, one that never shows ends the
wait once the drain is over, and a load that runs until stopped stops issuing when told."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from streams.bench.timed_edits import EditLoad, freshness


@dataclass
class FakeEdit:
    n: int
    committed_at: float
    seen_at: float | None = None


def _make(failing: set[int]) -> Callable[[int], FakeEdit]:
    def make(n: int) -> FakeEdit:
        if n in failing:
            raise ConnectionError(f"edit {n} refused")
        return FakeEdit(n, time.time())

    return make


def test_each_edit_is_timed_until_a_poll_finds_it_and_a_lost_one_ends_the_wait_after_the_drain() -> None:
    load: EditLoad[FakeEdit] = EditLoad()
    polls: list[list[int]] = []

    def searchable(pending: list[FakeEdit]) -> list[FakeEdit]:
        polls.append([edit.n for edit in pending])
        return [edit for edit in pending if edit.n != 3]  # edit 3 never reaches the index

    load.start("fake", 6, 0.01, _make({1}), label="fake")
    load.wait_searchable(searchable, lambda line: None, lambda made, seen: "", drain_s=0.3, interval_s=0.01)

    assert [edit.n for edit in load.made] == [0, 2, 3, 4, 5]
    assert load.failures == ["fake: ConnectionError: edit 1 refused"]
    assert [edit.n for edit in load.made if edit.seen_at is None] == [3]
    assert all(edit.seen_at >= edit.committed_at for edit in load.made if edit.seen_at is not None)
    assert len(freshness(load.made)) == 4
    assert all(3 in poll for poll in polls[-3:])  # it was asked about until the drain was over
    assert sum(0 in poll for poll in polls) == 1  # no longer asked about once found


def test_every_edit_made_before_the_load_ended_is_waited_for() -> None:
    load: EditLoad[FakeEdit] = EditLoad()
    seen_late: list[int] = []

    def slow_to_show(pending: list[FakeEdit]) -> list[FakeEdit]:
        # Each edit shows only at its second poll: the wait must go on past the load's end for the last.
        shown = [edit for edit in pending if edit.n in seen_late]
        seen_late.extend(edit.n for edit in pending)
        return shown

    load.start("fake", 4, 0.0, _make(set()))
    load.wait_searchable(slow_to_show, lambda line: None, lambda made, seen: "", drain_s=60.0, interval_s=0.01)
    assert len(load.made) == 4 and all(edit.seen_at is not None for edit in load.made)


def test_freshness_is_the_time_from_commit_to_searchable_of_the_edits_that_showed() -> None:
    edits = [FakeEdit(0, 10.0, 12.5), FakeEdit(1, 11.0, None), FakeEdit(2, 11.0, 11.25)]
    assert freshness(edits) == [2.5, 0.25]


@pytest.mark.timeout(30)
def test_a_stopped_load_issues_no_more_edits_and_keeps_the_ones_it_made() -> None:
    load: EditLoad[FakeEdit] = EditLoad()
    calls: list[int] = []
    failing = _make({1})

    def make(n: int) -> FakeEdit:
        calls.append(n)
        if n == 3:
            load.stop()  # stopped while this edit is in flight: it is kept, no other follows
        return failing(n)

    load.start("fake", None, 0.0, make, label="fake")
    load.wait_searchable(lambda pending: pending, lambda line: None, lambda made, seen: "", drain_s=60.0)

    assert calls == [0, 1, 2, 3]
    assert [edit.n for edit in load.made] == [0, 2, 3]
    assert load.failures == ["fake: ConnectionError: edit 1 refused"]
    assert all(edit.seen_at is not None for edit in load.made)


@pytest.mark.timeout(30)
def test_stopping_wakes_a_load_that_waits_for_its_next_edit() -> None:
    load: EditLoad[FakeEdit] = EditLoad()
    first = threading.Event()

    def make(n: int) -> FakeEdit:
        first.set()
        return FakeEdit(n, time.time())

    load.start("fake", None, 3600.0, make)  # the next edit is an hour away
    assert first.wait(10)
    load.stop()
    load.wait_searchable(lambda pending: pending, lambda line: None, lambda made, seen: "", drain_s=60.0)
    assert [edit.n for edit in load.made] == [0]


@pytest.mark.timeout(30)
def test_an_edit_whose_source_never_answers_does_not_hold_the_wait_past_the_drain_after_a_stop() -> None:
    load: EditLoad[FakeEdit] = EditLoad()
    answered = threading.Event()

    def make(n: int) -> FakeEdit:
        if n == 1:
            load.stop()
            answered.wait()  # the source hangs
        return FakeEdit(n, time.time())

    load.start("fake", None, 0.0, make)
    try:
        load.wait_searchable(
            lambda pending: pending, lambda line: None, lambda made, seen: "", drain_s=0.05, interval_s=0.01
        )
        assert [edit.n for edit in load.made] == [0]
    finally:
        answered.set()
