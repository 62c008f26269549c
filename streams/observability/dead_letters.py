"""Dead letters: an event that can never be processed becomes a record with its reason and origin."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from streams import avro
from streams.errors import StreamsError
from streams.observability.metrics import DEAD_LETTERS
from streams.records import Origin

# The raw value is kept for replay and diagnosis, but a dead letter must fit the producer's request
# limit (1 MB by default) however big the refused event was (the size guard refuses large ones).
MAX_VALUE_BYTES = 256 * 1024

# (the origin, the dead-letter record) -> awaited until the broker has it: only then may the offset move.
SendDeadLetter = Callable[[Origin, dict[str, Any]], Awaitable[None]]


def dead_letter_record(
    origin: Origin,
    key: bytes | None,
    value: bytes | None,
    error: BaseException,
    subjects: list[str] | None = None,
) -> dict[str, Any]:
    stage = error.stage if isinstance(error, StreamsError) else "unknown"
    reason = str(error)[:4000]
    if value is not None and len(value) > MAX_VALUE_BYTES:
        reason += f" [value truncated: {len(value):,} bytes, the first {MAX_VALUE_BYTES:,} kept]"
        value = value[:MAX_VALUE_BYTES]
    return {
        "origin_topic": origin.topic,
        "origin_partition": origin.partition,
        "origin_offset": origin.offset,
        "key": key,
        "value": value,
        "stage": stage,
        "error_type": type(error).__name__,
        "error": reason,
        "subjects": sorted(subjects or []),
        "failed_at": datetime.now(UTC),
    }


def dead_letter_key(origin: Origin) -> bytes:
    """Keyed by origin, so that a forget request can tombstone a dead letter on the compacted topic."""
    return f"{origin.topic}:{origin.partition}:{origin.offset}".encode()


def encode_dead_letter(record: dict[str, Any], registry_url: str | None = None) -> bytes:
    DEAD_LETTERS.labels(stage=record["stage"]).inc()
    return avro.encode("dead_letter", record, registry_url)
