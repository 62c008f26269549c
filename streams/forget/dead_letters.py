"""Tombstone the dead letters that name or mention a forgotten subject.

Dead letters from the decode and map stages carry no subjects (the event never got that far), so
their raw bytes are scanned for the subject's mention patterns too.

The dead-letter topic is compacted by key (its origin), so a tombstone removes the record for good
once the log cleaner runs; the record itself is never read again by anyone who honours tombstones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException

from streams import avro
from streams.clients import kafka_producer, read_whole_topic
from streams.errors import DecodeError
from streams.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeadLetterHit:
    """A dead letter that names a subject or whose raw bytes or error mention one of its patterns."""

    key: bytes
    partition: int
    offset: int
    record: dict[str, Any]
    named: frozenset[str]
    texts: tuple[str, str]  # the raw key and value as text, and the error


def find_dead_letters(
    settings: Settings,
    identifiers: set[str],
    mentions: Callable[[str], int] = lambda _text: 0,
    timeout_s: float = 20.0,
    could_mention: Callable[[str], bool] = lambda _text: True,
    group: str | None = None,
    honour_tombstones: bool = False,
) -> list[DeadLetterHit]:
    """Every dead letter whose subjects name `identifiers` or whose raw bytes or error `mentions` a
    pattern; `could_mention` (mentions.could_mention) skips the full scan of a text that cannot hold
    one, which is most of them. Reads the whole topic; changes nothing.

    `honour_tombstones` leaves out a record that a later tombstone of its key, in its partition,
    removes (what `streams locate` reports: it is gone for every reader, and compaction drops it)."""
    found: list[DeadLetterHit] = []
    tombstones: dict[tuple[int | None, bytes], int] = {}  # (partition, key) -> offset of its last tombstone
    group = group or f"{settings.worker_id}-forget-dlq"
    for message in read_whole_topic(settings, settings.dead_letter_topic, group, timeout_s):
        key, value = message.key(), message.value()
        if key is not None and value is None:
            tombstones[(message.partition(), key)] = message.offset() or 0
        if value is None or key is None:
            continue
        try:
            record = avro.decode("dead_letter", value, settings.schema_registry_url)
        except DecodeError:
            continue
        raw = b"".join(part or b"" for part in (record.get("key"), record.get("value")))
        named = identifiers & set(record.get("subjects") or [])
        texts = (raw.decode("utf-8", errors="replace"), record.get("error") or "")
        if named or any(could_mention(text) and mentions(text) for text in texts):
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None  # a consumed record always has both
            found.append(DeadLetterHit(key, partition, offset, record, frozenset(named), texts))
    if honour_tombstones:
        return [hit for hit in found if tombstones.get((hit.partition, hit.key), -1) < hit.offset]
    return found


def tombstone_dead_letters(
    settings: Settings,
    identifiers: set[str],
    mentions: Callable[[str], int] = lambda _text: 0,
    timeout_s: float = 20.0,
    could_mention: Callable[[str], bool] = lambda _text: True,
) -> int:
    """Tombstone every dead letter `find_dead_letters` finds; returns how many keys were tombstoned."""
    keys = {
        hit.key: hit.partition for hit in find_dead_letters(settings, identifiers, mentions, timeout_s, could_mention)
    }
    if keys:
        producer = kafka_producer(settings, acks="all")
        for key, partition in keys.items():  # in the record's own partition: compaction removes it there
            producer.produce(settings.dead_letter_topic, key=key, value=None, partition=partition)
        if producer.flush(timeout_s) > 0:
            raise KafkaException("tombstones for forgotten dead letters were not all delivered")
        log.info("tombstoned %d dead letters naming a forgotten subject", len(keys))
    return len(keys)
