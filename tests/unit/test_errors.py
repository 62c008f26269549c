"""One exception root: every error the project raises on purpose is a StreamsError, and says whether
a lane should retry it."""

from __future__ import annotations

from typing import Any

import pytest

from streams.bench.probes import BenchError
from streams.errors import (
    ChunkingError,
    DecodeError,
    EmbeddingError,
    IndexingError,
    MappingError,
    Outcome,
    RetryableError,
    StreamsError,
    classify,
    classify_item,
    classify_status,
)
from streams.sources.connect import SourceUnavailable
from streams.sources.corpus import CorpusUnavailable
from streams.stack.connectors import ConnectorFailed
from streams.stack.runner import ServerFailed, StackError

PERMANENT = [
    DecodeError,
    MappingError,
    ChunkingError,
    EmbeddingError,
    IndexingError,
    StackError,
    ConnectorFailed,
    SourceUnavailable,
    CorpusUnavailable,
    BenchError,
]


@pytest.mark.parametrize("error", PERMANENT)
def test_every_project_error_has_one_root_and_is_not_retried(error: type[StreamsError]) -> None:
    assert issubclass(error, StreamsError)
    assert error.retryable is False
    assert not issubclass(error, RuntimeError)  # callers catch StreamsError, not a builtin they share with libraries


def test_retryable_errors_say_so_and_keep_their_stage() -> None:
    error = RetryableError("elasticsearch answered 429", stage="embed")
    assert error.retryable is True
    assert error.stage == "embed"
    assert error.reason == "RetryableError: elasticsearch answered 429"


def test_a_server_failure_keeps_the_dead_letter_reason_text() -> None:
    error = ServerFailed("kafka", "exited with 1", "last line")
    assert isinstance(error, StackError)
    assert error.failure == "exited with 1"
    assert error.reason.startswith("ServerFailed: kafka: exited with 1")
    assert error.stage == "stack"


@pytest.mark.parametrize(
    ("item", "outcome"),
    [
        ({"index": {"_id": "a", "status": 201}}, Outcome.DONE),
        ({"delete": {"_id": "a", "status": 404}}, Outcome.DONE),  # already gone: as good as deleted
        ({"update": {"_id": "a", "status": 404}}, Outcome.DONE),  # nothing to refresh
        ({"index": {"_id": "a", "status": 404}}, Outcome.PERMANENT),  # an index write needs its index
        ({"index": {"_id": "state:a", "status": 409}}, Outcome.CONFLICT),
        ({"index": {"_id": "a", "status": 429}}, Outcome.TRANSIENT),  # the write pool is full: wait
        ({"delete": {"_id": "a", "status": 503}}, Outcome.TRANSIENT),
        ({"index": {"_id": "a", "status": 400}}, Outcome.PERMANENT),
        ({"index": {"_id": "a"}}, Outcome.TRANSIENT),  # no status at all: the node failed it (500)
    ],
)
def test_one_rule_classifies_a_bulk_item(item: dict[str, Any], outcome: Outcome) -> None:
    assert classify_item(item) is outcome


def test_a_call_and_an_item_with_the_same_status_are_classified_alike() -> None:
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig, SerializationError
    from elasticsearch import ApiError

    for status in (200, 400, 404, 409, 429, 500, 503):
        meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "localhost", 9200))
        assert classify(ApiError("x", meta, {})) is classify_status(status)
    assert classify(SerializationError("NaN in a vector")) is Outcome.PERMANENT  # waiting never fixes it
