"""Tombstone the dead letters that name a forgotten subject.

The dead-letter topic is compacted by key (its origin), so a tombstone removes the record for good
once the log cleaner runs; the record itself is never read again by anyone who honours tombstones.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException

from streams import avro
from streams.clients import kafka_producer, read_whole_topic
from streams.errors import DecodeError
from streams.settings import Settings

log = logging.getLogger(__name__)


def tombstone_dead_letters(settings: Settings, identifiers: set[str], timeout_s: float = 20.0) -> int:
    keys: set[bytes] = set()
    group = f"{settings.worker_id}-forget-dlq"
    for message in read_whole_topic(settings, settings.dead_letter_topic, group, timeout_s):
        key, value = message.key(), message.value()
        if value is None or key is None:
            continue
        try:
            subjects = avro.decode("dead_letter", value, settings.schema_registry_url).get("subjects") or []
        except DecodeError:
            continue
        if identifiers & set(subjects):
            keys.add(key)
    if keys:
        producer = kafka_producer(settings, acks="all")
        for key in keys:
            producer.produce(settings.dead_letter_topic, key=key, value=None)
        if producer.flush(timeout_s) > 0:
            raise KafkaException("tombstones for forgotten dead letters were not all delivered")
        log.info("tombstoned %d dead letters naming a forgotten subject", len(keys))
    return len(keys)
