"""One exception root: every error the project raises on purpose is a StreamsError, and says whether
a lane should retry it."""

from __future__ import annotations

import pytest

from streams.bench.probes import BenchError
from streams.errors import (
    ChunkingError,
    DecodeError,
    EmbeddingError,
    IndexingError,
    MappingError,
    RetryableError,
    StreamsError,
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
