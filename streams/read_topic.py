"""Read a topic from its beginning to the end it had when reading started (the ledger, the dead letters)."""

from __future__ import annotations

from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streams.settings import Settings


def read_whole_topic(settings: Settings, topic: str, group_id: str, timeout_s: float = 30.0) -> Iterator[Message]:
    consumer = Consumer(settings.kafka_config(**{"group.id": group_id, "enable.auto.commit": False}))
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return
        ends: dict[int, int] = {}
        assignment = []
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            if high > low:
                ends[partition] = high
                assignment.append(TopicPartition(topic, partition, low))
        consumer.assign(assignment)
        while ends:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            yield message
            if message.offset() + 1 >= ends.get(message.partition(), 0):
                ends.pop(message.partition(), None)
    finally:
        consumer.close()
