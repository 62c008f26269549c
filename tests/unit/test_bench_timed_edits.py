"""The freshness scenarios' load and stopwatch: every edit is made, a failed one is counted and the load
goes on, an edit is timed from its commit to the poll that found it, and one that never shows ends the
wait once the drain is over."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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
