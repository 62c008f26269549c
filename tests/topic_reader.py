"""Read what Debezium wrote after a point in time: the integration tests and the fixture capture
script use it to wait (with a deadline) for the change events of one row."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from streams.clients import kafka_consumer, partitions, unique_group, watermarks
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
    that. Unlike `streams.clients.read_to_end` it keeps reading past that end, and picks up partitions
    (or the whole topic) created after construction, which it reads from their beginning."""

    def __init__(self, settings: Settings, topic: str, *, from_beginning: bool = False) -> None:
        self.topic = topic
        self.consumer = kafka_consumer(
            settings,
            unique_group("streams-test"),
            **{"auto.offset.reset": "earliest", "allow.auto.create.topics": False},
        )
        self.start = {} if from_beginning else {p: high for p, (_, high) in watermarks(self.consumer, topic).items()}
        self.assigned: set[int] = set()

    def _assign_new_partitions(self) -> None:
        new = [p for p in partitions(self.consumer, self.topic) if p not in self.assigned]
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
                time.sleep(0.2)  # the topic does not exist yet: look again at the next metadata refresh
                continue
            message = self.consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.retriable() or error.code() < 0:
                    continue
                raise KafkaException(error)
            record = Record(
                str(message.topic()),
                int(message.partition() or 0),
                int(message.offset() or 0),
                _decode(message.key()),
                _decode(message.value()),
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
