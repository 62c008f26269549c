"""`streams eval load` waits for its documents even when the worker has not created the index yet: a
worker that has just started creates it with its first batch, and the wait must not end in a
traceback then."""

from __future__ import annotations

from typing import Any

import pytest
from elasticsearch import NotFoundError

from streams.eval.load_collection import indexed_count


class Indices:
    def __init__(self, exists: bool) -> None:
        self.exists = exists

    def refresh(self, index: str) -> None:
        if not self.exists:
            raise NotFoundError(404, "index_not_found_exception", {})  # type: ignore[arg-type]


class Client:
    def __init__(self, exists: bool) -> None:
        self.indices = Indices(exists)

    def search(self, **request: Any) -> dict[str, Any]:
        return {"aggregations": {"documents": {"value": 2}}, "hits": {"total": {"value": 5}}}


def test_no_index_yet_counts_as_nothing_indexed() -> None:
    assert indexed_count(Client(exists=False), "streams-chunks", ["g"], ["tickets/ticket/1"]) == (0, 0)  # type: ignore[arg-type]


def test_an_existing_index_is_counted() -> None:
    assert indexed_count(Client(exists=True), "streams-chunks", ["g"], ["tickets/ticket/1"]) == (2, 5)  # type: ignore[arg-type]


def test_another_error_is_not_taken_for_a_missing_index() -> None:
    class Failing(Client):
        def search(self, **request: Any) -> dict[str, Any]:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        indexed_count(Failing(exists=True), "streams-chunks", ["g"], ["tickets/ticket/1"])  # type: ignore[arg-type]
