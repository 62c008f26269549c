"""The project's typed errors.

Every failure that can reach a dead-letter record carries the pipeline ``stage`` it came from, so a
dead letter says *where* an event broke without parsing messages. Library errors are wrapped
(``raise DecodeError(...) from exc``) so callers catch one hierarchy, never fastavro's or yaml's.
"""

from __future__ import annotations


class StreamsError(Exception):
    """Root of every error this project raises on purpose."""

    stage: str = "unknown"

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

    def __init__(self, message: str, *, stage: str = "index") -> None:
        super().__init__(message, stage=stage)
