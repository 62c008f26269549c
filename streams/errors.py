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


class StreamsError(Exception):
    """Root of every error this project raises on purpose."""

    stage: str = "unknown"
    retryable: bool = False

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


class RetryableError(StreamsError):
    """A transient failure (timeout, 429, broker or cluster down): back off and retry, never dead-letter.

    ``stage`` says which stage hit it, so retries can be counted per stage.
    """

    retryable = True

    def __init__(self, message: str, *, stage: str = "index") -> None:
        super().__init__(message, stage=stage)
