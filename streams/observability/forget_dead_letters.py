"""Tombstone the dead letters that name a forgotten subject.

The dead-letter topic is compacted by key (its origin), so a tombstone removes the record for good
once the log cleaner runs; the record itself is never read again by anyone who honours tombstones.
"""

from __future__ import annotations

import logging

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from streams import avro
from streams.errors import DecodeError
from streams.settings import Settings

log = logging.getLogger(__name__)


def tombstone_dead_letters(settings: Settings, identifiers: set[str], timeout_s: float = 20.0) -> int:
    consumer = Consumer(
        settings.kafka_config(**{"group.id": f"{settings.worker_id}-forget-dlq", "enable.auto.commit": False})
    )
    keys: set[bytes] = set()
    try:
        topic = consumer.list_topics(settings.dead_letter_topic, timeout=timeout_s).topics.get(
            settings.dead_letter_topic
        )
        if topic is None or topic.error is not None:
            return 0
        ends: dict[int, int] = {}
        assignment = []
        for partition in topic.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(settings.dead_letter_topic, partition), timeout=timeout_s
            )
            if high > low:
                ends[partition] = high
                assignment.append(TopicPartition(settings.dead_letter_topic, partition, low))
        consumer.assign(assignment)
        while ends:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            if message.value() is not None and message.key() is not None:
                try:
                    record = avro.decode("dead_letter", message.value())
                except DecodeError:
                    record = {"subjects": []}
                if identifiers & set(record.get("subjects") or []):
                    keys.add(message.key())
            if message.offset() + 1 >= ends.get(message.partition(), 0):
                ends.pop(message.partition(), None)
    finally:
        consumer.close()
    if keys:
        producer = Producer(settings.kafka_config(acks="all"))
        for key in keys:
            producer.produce(settings.dead_letter_topic, key=key, value=None)
        if producer.flush(timeout_s) > 0:
            raise KafkaException("tombstones for forgotten dead letters were not all delivered")
        log.info("tombstoned %d dead letters naming a forgotten subject", len(keys))
    return len(keys)
