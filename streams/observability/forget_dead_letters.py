"""Tombstone the dead letters that name a forgotten subject.

The dead-letter topic is compacted by key (its origin), so a tombstone removes the record for good
once the log cleaner runs; the record itself is never read again by anyone who honours tombstones.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException, Producer

from streams import avro
from streams.errors import DecodeError
from streams.read_topic import read_whole_topic
from streams.settings import Settings

log = logging.getLogger(__name__)


def tombstone_dead_letters(settings: Settings, identifiers: set[str], timeout_s: float = 20.0) -> int:
    keys: set[bytes] = set()
    group = f"{settings.worker_id}-forget-dlq"
    for message in read_whole_topic(settings, settings.dead_letter_topic, group, timeout_s):
        if message.value() is None or message.key() is None:
            continue
        try:
            subjects = avro.decode("dead_letter", message.value()).get("subjects") or []
        except DecodeError:
            continue
        if identifiers & set(subjects):
            keys.add(message.key())
    if keys:
        producer = Producer(settings.kafka_config(acks="all"))
        for key in keys:
            producer.produce(settings.dead_letter_topic, key=key, value=None)
        if producer.flush(timeout_s) > 0:
            raise KafkaException("tombstones for forgotten dead letters were not all delivered")
        log.info("tombstoned %d dead letters naming a forgotten subject", len(keys))
    return len(keys)
