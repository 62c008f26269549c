"""Reading a topic to its end (streams.clients.read_to_end), over a fake consumer: which partitions are
assigned where, when reading stops, and what a deadline does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from streams.clients import TopicReadTimeout, read_to_end


@dataclass
class FakeMessage:
    _partition: int
    _offset: int

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None


@dataclass
class FakeConsumer:
    """A topic of partitions with (low, high) watermarks; `poll` hands out the assigned records in order."""

    offsets: dict[int, tuple[int, int]]
    stall: bool = False  # deliver nothing, as a consumer cut off from its broker would
    assigned: list[tuple[int, int]] = field(default_factory=list)
    _queue: list[FakeMessage] = field(default_factory=list)

    def list_topics(self, topic: str, timeout: float) -> Any:
        metadata = type("TopicMetadata", (), {"error": None, "partitions": dict.fromkeys(self.offsets)})
        return type("ClusterMetadata", (), {"topics": {topic: metadata}})

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        return self.offsets[tp.partition]

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = [(tp.partition, tp.offset) for tp in partitions]
        # Each partition holds five more records than its end had: written after reading began.
        self._queue = [
            FakeMessage(tp.partition, offset)
            for tp in partitions
            for offset in range(tp.offset, self.offsets[tp.partition][1] + 5)
        ]

    def poll(self, timeout: float) -> FakeMessage | None:
        if self.stall or not self._queue:
            return None
        return self._queue.pop(0)


def test_reads_each_partition_from_its_start_to_the_end_it_had() -> None:
    consumer = FakeConsumer({0: (2, 5), 1: (0, 0), 2: (0, 3)})
    read = [(m.partition(), m.offset()) for m in read_to_end(consumer, "t")]  # type: ignore[arg-type]
    assert consumer.assigned == [(0, 2), (2, 0)]  # the empty partition is not assigned at all
    assert sorted(read) == [(0, 2), (0, 3), (0, 4), (2, 0), (2, 1), (2, 2)]


def test_a_start_offset_skips_what_came_before_it() -> None:
    consumer = FakeConsumer({0: (0, 5), 1: (0, 2)})
    read = [(m.partition(), m.offset()) for m in read_to_end(consumer, "t", {0: 4, 1: 2})]  # type: ignore[arg-type]
    assert consumer.assigned == [(0, 4)]
    assert read == [(0, 4)]


def test_a_deadline_turns_a_stalled_read_into_an_error() -> None:
    consumer = FakeConsumer({0: (0, 5)}, stall=True)
    with pytest.raises(TopicReadTimeout, match="partitions \\[0\\] not read to their end"):
        list(read_to_end(consumer, "t", deadline_s=0.01))  # type: ignore[arg-type]
