"""Consumer lag of the worker's group, per topic partition, read from Kafka (not from faust's internals).

Lag is the high watermark less the group's committed offset: the messages the worker has not yet
acknowledged. A partition the group never committed counts from the low watermark.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import KafkaException, TopicPartition

from streams.clients import kafka_consumer
from streams.observability.metrics import CONSUMER_LAG
from streams.settings import Settings

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LagReading:
    """The lag per topic partition as read at `read_at`: what the worker last knew (the web console shows it)."""

    read_at: datetime
    messages: dict[tuple[str, int], int]


class ConsumerLagReader:
    """Reads the committed offsets of `group_id` without joining the group (it never subscribes)."""

    def __init__(self, settings: Settings, group_id: str) -> None:
        self._consumer = kafka_consumer(settings, group_id)

    def lag(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        existing = self._consumer.list_topics(timeout=TIMEOUT_S).topics
        partitions = [
            TopicPartition(topic, partition)
            for topic in sorted(set(topics))
            if topic in existing and existing[topic].error is None
            for partition in sorted(existing[topic].partitions)
        ]
        if not partitions:
            return {}
        result: dict[tuple[str, int], int] = {}
        for committed in self._consumer.committed(partitions, timeout=TIMEOUT_S):
            if committed.error is not None:
                raise KafkaException(committed.error)
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(committed.topic, committed.partition), timeout=TIMEOUT_S
            )
            start = committed.offset if committed.offset >= 0 else low
            result[(committed.topic, committed.partition)] = max(high - start, 0)
        return result

    def close(self) -> None:
        self._consumer.close()


def record_lag(lag: dict[tuple[str, int], int]) -> None:
    for (topic, partition), messages in lag.items():
        CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(messages)
