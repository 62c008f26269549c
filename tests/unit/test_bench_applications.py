"""The applications' freshness scenario over a fake application and a fake index: an edit counts
once the index finds its word, one never found is reported as never searchable, and without an
application in STREAMS_STACK_APPS the scenario says it skipped."""

from __future__ import annotations

from typing import Any

import pytest

from streams.bench import applications
from streams.settings import Settings


class FakeWriter(applications.Writer):
    source = "rt"
    document_id = "rt/ticket/1"

    def __init__(self, index: FakeIndex, lose: int) -> None:
        self.index, self.lose, self.edits = index, lose, 0

    def edit(self, word: str) -> None:
        self.edits += 1
        if self.edits != self.lose:  # the lost one never reaches the index
            self.index.words.add(word)


class FakeIndex:
    def __init__(self) -> None:
        self.words: set[str] = set()

    def count(self, index: str, query: dict[str, Any]) -> dict[str, int]:
        word = next(f["match"]["text"] for f in query["bool"]["filter"] if "match" in f)
        return {"count": int(word in self.words)}


def test_each_edit_is_timed_until_its_word_is_found_and_a_lost_one_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(applications, "cpu_seconds", lambda settings: {})
    monkeypatch.setattr(applications, "cpu_used", lambda before, after: {})
    index = FakeIndex()
    writer = FakeWriter(index, lose=2)
    report = applications._measure(
        Settings(), index, lambda line: None, [writer], rate=20.0, duration_s=0.2, drain_s=0.5
    )
    assert (report["events"], report["searchable"], report["never_searchable"]) == (4, 3, 1)
    assert report["freshness_by_source_s"]["rt"]["count"] == 3


def test_without_an_application_it_is_skipped() -> None:
    report = applications.run(Settings(stack_apps=()), None, lambda line: None, rate=1.0, duration_s=1.0)
    assert "skipped" in report


class CountingIndex:
    """An index that holds the writer's document once it was asked `after` times."""

    def __init__(self, after: int) -> None:
        self.after, self.asked = after, 0

    def count(self, index: str, query: dict[str, Any]) -> dict[str, int]:
        self.asked += 1
        return {"count": int(self.asked > self.after)}


def test_the_scenario_waits_until_each_writer_s_document_is_indexed_and_says_when_it_never_is() -> None:
    writer = FakeWriter(FakeIndex(), lose=0)
    index = CountingIndex(after=2)
    applications._wait_indexed(index, "alias", writer, timeout_s=30)
    assert index.asked == 3
    with pytest.raises(applications.BenchError, match="rt/ticket/1 was not indexed"):
        applications._wait_indexed(CountingIndex(after=10**9), "alias", writer, timeout_s=0.1)
