"""The project's typed errors: one root, `StreamsError`, for everything the project raises on purpose.

Every failure that can reach a dead-letter record carries the pipeline ``stage`` it came from, so a
dead letter says *where* an event broke without parsing messages. Library errors are wrapped
(``raise DecodeError(...) from exc``) so callers catch one hierarchy, never fastavro's or yaml's.

``retryable`` says what a lane does with the failure: retry it later (a timeout, a 429, a broker or
cluster that is down) or give up on the event (dead-letter it). It is a class attribute, so the
answer is part of the error's type; only `RetryableError` and its subclasses say yes.

The errors of the tools around the pipeline (the local stack, the source databases, the benchmark)
live beside their code and derive from `StreamsError` too: `StackError` (stack/runner.py),
`SourceUnavailable` (sources/connect.py), `CorpusUnavailable` (sources/corpus.py), `BenchError`
(bench/probes.py).
"""

from __future__ import annotations

import asyncio

from confluent_kafka import KafkaException
from elastic_transport import ConnectionError as ElasticConnectionError
from elastic_transport import ConnectionTimeout as ElasticTimeout
from elasticsearch import ApiError

# HTTP answers that mean "later": a timeout, overload, a node restarting.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class StreamsError(Exception):
    """Root of every error this project raises on purpose."""

    stage: str = "unknown"
    retryable: bool = False  # transient: back off and try again, never dead-letter

    def __init__(self, message: str, *, stage: str | None = None) -> None:
        super().__init__(message)
        if stage is not None:
            self.stage = stage

    @property
    def reason(self) -> str:
        """The one-line text a dead-letter record stores."""
        return f"{type(self).__name__}: {self}"


class DecodeError(StreamsError):
    """The bytes on the topic are not a change event we understand."""

    stage = "decode"


class MappingError(StreamsError):
    """A mapping file is invalid, or a row does not fit its mapping."""

    stage = "map"


class ChunkingError(StreamsError):
    """A part's text could not be cut into chunks."""

    stage = "chunk"


class EmbeddingError(StreamsError):
    """The model failed, or returned vectors that do not match the request."""

    stage = "embed"


class IndexingError(StreamsError):
    """Elasticsearch rejected a write for a reason that retrying will not fix."""

    stage = "index"


class InvalidRequest(StreamsError):
    """A deletion request that can never be carried out as written (an empty or malformed subject)."""

    stage = "forget"


class RetryableError(StreamsError):
    """A transient failure (timeout, 429, broker or cluster down): back off and retry, never dead-letter.

    ``stage`` says which stage hit it, so retries can be counted per stage.
    """

    retryable = True

    def __init__(self, message: str, *, stage: str = "index") -> None:
        super().__init__(message, stage=stage)


def is_transient(exc: BaseException) -> bool:
    """The one retry-or-dead-letter rule both lanes use: True when waiting can fix `exc`.

    Our own errors say so themselves (``retryable``); from the libraries, an unreachable or overloaded
    Elasticsearch, a retriable Kafka error and a timeout are transient; anything else is not.
    """
    if isinstance(exc, StreamsError):
        return exc.retryable
    if isinstance(exc, ElasticConnectionError | ElasticTimeout | asyncio.TimeoutError | ConnectionError):
        return True
    if isinstance(exc, ApiError):
        return exc.meta.status in RETRYABLE_STATUS
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else None
        return bool(getattr(error, "retriable", lambda: False)())
    return False
