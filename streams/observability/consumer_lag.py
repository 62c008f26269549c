"""Consumer lag of the worker's groups (the lanes' and the router's), per topic partition, read from
Kafka (not from faust's internals).

Lag is the high watermark less the group's committed offset: the messages the worker has not yet
acknowledged. A partition the group never committed counts from the low watermark.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.clients import kafka_consumer
from streams.observability.metrics import CONSUMER_LAG
from streams.pipeline.document_mapping import Mappings
from streams.settings import Settings
from streams.topics import source_topics

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class LagReading:
    """The lag per topic partition as read at `read_at`: what the worker last knew (the web console shows it)."""

    read_at: datetime
    messages: dict[tuple[str, int], int]


class ConsumerLagReader:
    """Reads the committed offsets of `group_id` without joining the group (it never subscribes); the
    topics `groups` names (topic -> group) are read from that group's offsets instead."""

    def __init__(self, settings: Settings, group_id: str, groups: Mapping[str, str] | None = None) -> None:
        self._settings = settings
        self._group_id = group_id
        self._groups = dict(groups or {})
        self._consumers: dict[str, Consumer] = {}

    def _consumer(self, group_id: str) -> Consumer:
        if group_id not in self._consumers:
            self._consumers[group_id] = kafka_consumer(self._settings, group_id)
        return self._consumers[group_id]

    def lag(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        any_consumer = self._consumer(self._group_id)
        existing = any_consumer.list_topics(timeout=TIMEOUT_S).topics
        by_group: dict[str, list[TopicPartition]] = {}
        for topic in sorted(set(topics)):
            if topic in existing and existing[topic].error is None:
                group = self._groups.get(topic, self._group_id)
                by_group.setdefault(group, []).extend(
                    TopicPartition(topic, partition) for partition in sorted(existing[topic].partitions)
                )
        result: dict[tuple[str, int], int] = {}
        for group, partitions in by_group.items():
            consumer = self._consumer(group)
            for committed in consumer.committed(partitions, timeout=TIMEOUT_S):
                if committed.error is not None:
                    raise KafkaException(committed.error)
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(committed.topic, committed.partition), timeout=TIMEOUT_S
                )
                start = committed.offset if committed.offset >= 0 else low
                result[(committed.topic, committed.partition)] = max(high - start, 0)
        return result

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()
        self._consumers.clear()


def worker_lag_reader(settings: Settings, mappings: Mappings) -> ConsumerLagReader:
    """The worker's lag: Debezium's topics as its router's group has committed them (the router reads
    them with a consumer of its own, agents/router_consumer.py), the rest as the worker's group has."""
    return ConsumerLagReader(
        settings, settings.worker_id, {topic: settings.router_group_id for topic in source_topics(mappings, settings)}
    )


def record_lag(lag: dict[tuple[str, int], int]) -> None:
    for (topic, partition), messages in lag.items():
        CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(messages)
