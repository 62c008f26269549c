"""Tombstone the dead letters that name or mention a forgotten subject.

Dead letters from the decode and map stages carry no subjects (the event never got that far), so
their raw bytes are scanned for the subject's mention patterns too.

The dead-letter topic is compacted by key (its origin), so a tombstone removes the record for good
once the log cleaner runs; the record itself is never read again by anyone who honours tombstones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaException

from streams import avro
from streams.clients import kafka_producer, read_whole_topic
from streams.errors import DecodeError
from streams.settings import Settings

log = logging.getLogger(__name__)


def tombstone_dead_letters(
    settings: Settings,
    identifiers: set[str],
    mentions: Callable[[str], int] = lambda _text: 0,
    timeout_s: float = 20.0,
    could_mention: Callable[[str], bool] = lambda _text: True,
) -> int:
    """Tombstone every dead letter whose subjects name `identifiers` or whose raw bytes or error
    `mentions` a pattern; `could_mention` (mentions.could_mention) skips the full scan of a text
    that cannot hold one, which is most of them."""
    keys: dict[bytes, int] = {}  # key -> the partition its dead letter is in
    group = f"{settings.worker_id}-forget-dlq"
    for message in read_whole_topic(settings, settings.dead_letter_topic, group, timeout_s):
        key, value = message.key(), message.value()
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
            partition = message.partition()
            assert partition is not None  # a consumed record always has one
            keys[key] = partition
    if keys:
        producer = kafka_producer(settings, acks="all")
        for key, partition in keys.items():  # in the record's own partition: compaction removes it there
            producer.produce(settings.dead_letter_topic, key=key, value=None, partition=partition)
        if producer.flush(timeout_s) > 0:
            raise KafkaException("tombstones for forgotten dead letters were not all delivered")
        log.info("tombstoned %d dead letters naming a forgotten subject", len(keys))
    return len(keys)
