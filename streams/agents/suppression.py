"""The suppression ledger: identifiers that were forgotten and must never be indexed again.

The durable copy is a compacted Kafka topic (key: the identifier, value: an Avro ledger entry), so it
survives restarts and is shared by every worker. Each worker keeps the whole set in memory (a few
bytes per forgotten person) and checks it for every change it indexes.

`gate` orders the two lanes: the indexer holds it while it re-checks the ledger and writes a batch,
and a deletion request passes through it after adding its identifiers. So no batch planned before a
request can land after the request has deleted the subject's chunks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.settings import Settings

log = logging.getLogger(__name__)


class SuppressionLedger:
    def __init__(self, identifiers: Iterable[str] = ()) -> None:
        self._identifiers: set[str] = set(identifiers)
        self.gate = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._identifiers)

    def __contains__(self, identifier: str) -> bool:
        return identifier in self._identifiers

    def names_any(self, subjects: Iterable[str]) -> bool:
        return any(subject in self._identifiers for subject in subjects)

    def add(self, identifiers: Iterable[str]) -> None:
        self._identifiers.update(identifiers)

    @classmethod
    def load(cls, settings: Settings, timeout_s: float = 30.0) -> SuppressionLedger:
        """Read the compacted ledger topic from the beginning to its end."""
        consumer = Consumer(
            settings.kafka_config(**{"group.id": f"{settings.worker_id}-ledger", "enable.auto.commit": False})
        )
        identifiers: set[str] = set()
        try:
            metadata = consumer.list_topics(settings.ledger_topic, timeout=timeout_s)
            topic = metadata.topics.get(settings.ledger_topic)
            if topic is None or topic.error is not None or not topic.partitions:
                return cls()
            partitions = [TopicPartition(settings.ledger_topic, p, 0) for p in topic.partitions]
            ends = {}
            for tp in partitions:
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s)
                if high > low:
                    ends[tp.partition] = high
                    tp.offset = low
            consumer.assign([tp for tp in partitions if tp.partition in ends])
            while ends:
                message = consumer.poll(1.0)
                if message is None:
                    continue
                if message.error():
                    raise KafkaException(message.error())
                if message.value() is not None and message.key() is not None:
                    identifiers.add(message.key().decode())
                if message.offset() + 1 >= ends.get(message.partition(), 0):
                    ends.pop(message.partition(), None)
        finally:
            consumer.close()
        log.info("suppression ledger: %d forgotten identifiers", len(identifiers))
        return cls(identifiers)
