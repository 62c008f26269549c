"""Read what Debezium wrote after a point in time: the integration tests and the fixture capture
script use it to wait (with a deadline) for the change events of one row."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.settings import Settings


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: Any
    value: Any

    def as_fixture(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "key": self.key,
            "value": self.value,
        }


def _decode(raw: bytes | None) -> Any:
    return None if raw is None else json.loads(raw)


class TopicReader:
    """Remembers each partition's end offset at construction; `read` returns records written after
    that (a topic that did not exist yet is read from its beginning)."""

    def __init__(self, settings: Settings, topic: str, *, from_beginning: bool = False) -> None:
        self.topic = topic
        self.consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": f"streams-test-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "allow.auto.create.topics": False,
                }
            )
        )
        self.start = {} if from_beginning else {p: self._high(p) for p in self._partitions()}
        self.assigned: set[int] = set()

    def _partitions(self) -> list[int]:
        metadata = self.consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
        if metadata is None or metadata.error is not None:
            return []
        return sorted(metadata.partitions)

    def _high(self, partition: int) -> int:
        return int(self.consumer.get_watermark_offsets(TopicPartition(self.topic, partition), timeout=10)[1])

    def _assign_new_partitions(self) -> None:
        new = [p for p in self._partitions() if p not in self.assigned]
        if new:
            self.consumer.incremental_assign([TopicPartition(self.topic, p, self.start.get(p, 0)) for p in new])
            self.assigned.update(new)

    def read(self, match: Callable[[Record], bool], count: int, timeout_s: float) -> list[Record]:
        """The first `count` matching records, or fewer when the deadline passes."""
        found: list[Record] = []
        deadline = time.monotonic() + timeout_s
        next_metadata = 0.0
        while len(found) < count and time.monotonic() < deadline:
            if time.monotonic() >= next_metadata:
                self._assign_new_partitions()
                next_metadata = time.monotonic() + 1.0
            if not self.assigned:
                time.sleep(0.2)
                continue
            message = self.consumer.poll(0.2)
            if message is None:
                continue
            if message.error() is not None:
                if message.error().retriable() or message.error().code() < 0:
                    continue
                raise KafkaException(message.error())
            record = Record(
                message.topic(), message.partition(), message.offset(), _decode(message.key()), _decode(message.value())
            )
            if match(record):
                found.append(record)
        return found

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
