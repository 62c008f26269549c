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
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from confluent_kafka import KafkaException
from elastic_transport import SerializationError, TransportError
from elasticsearch import ApiError

# HTTP answers that mean "later": a timeout, overload (429: the write pool is full), a node restarting.
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


class Outcome(StrEnum):
    """What an Elasticsearch answer means to the lane that got it."""

    DONE = "done"  # written, or (a delete or an update of a document already gone) as good as written
    CONFLICT = "conflict"  # a conditional write lost to a concurrent one (409): read again, plan again
    TRANSIENT = "transient"  # waiting fixes it: back off and retry, never give up
    PERMANENT = "permanent"  # retrying the same write will not help: dead-letter it, or give the request up


def classify_status(status: int, action: str = "index") -> Outcome:
    """The one rule for an HTTP status from Elasticsearch, for a whole call or one bulk item."""
    if status < 300 or (status == 404 and action in {"delete", "update"}):
        return Outcome.DONE
    if status == 409:
        return Outcome.CONFLICT
    if status in RETRYABLE_STATUS:
        return Outcome.TRANSIENT
    return Outcome.PERMANENT


def classify_item(item: Mapping[str, Any]) -> Outcome:
    """One bulk result item, ``{action: {"status": ..., "_id": ..., "error": ...}}``."""
    action, result = next(iter(item.items()))
    return classify_status(int(result.get("status", 500)), action)


def classify(exc: BaseException) -> Outcome:
    """An exception from a client call, by the same rule as a bulk item's status.

    Our own errors say so themselves (``retryable``); from the libraries, an unreachable Elasticsearch
    (any transport failure: connection, timeout, TLS), a status `classify_status` calls transient, a
    retriable Kafka error and a timeout are transient; anything else is permanent (a body the client
    cannot serialize stays so however long one waits).
    """
    if isinstance(exc, StreamsError):
        return Outcome.TRANSIENT if exc.retryable else Outcome.PERMANENT
    if isinstance(exc, SerializationError):
        return Outcome.PERMANENT
    if isinstance(exc, TransportError | asyncio.TimeoutError | ConnectionError):
        return Outcome.TRANSIENT
    if isinstance(exc, ApiError):
        return classify_status(exc.meta.status)
    if isinstance(exc, KafkaException):
        error = exc.args[0] if exc.args else None
        return Outcome.TRANSIENT if getattr(error, "retriable", lambda: False)() else Outcome.PERMANENT
    return Outcome.PERMANENT


def is_transient(exc: BaseException) -> bool:
    """The one retry-or-dead-letter rule both lanes use: True when waiting can fix `exc`."""
    return classify(exc) is Outcome.TRANSIENT
