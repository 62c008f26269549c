"""The router's producer: each send's future settles with the broker's report, a full queue is
waited out, and closing says how many records were left undelivered."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.async_producer import AsyncProducer


class _Message:
    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


class FakeProducer:
    """Queues what is produced; `poll` (from the delivery thread) reports it, as librdkafka would."""

    def __init__(self, error: KafkaError | None = None, full_times: int = 0, deliver: bool = True) -> None:
        self.error, self.full_times, self.deliver = error, full_times, deliver
        self.queued: list[tuple[str, bytes, int | None, Any]] = []
        self.produced: list[tuple[str, bytes, int | None]] = []
        self.lock = threading.Lock()

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any, partition: int | None = None) -> None:
        with self.lock:
            if self.full_times:
                self.full_times -= 1
                raise BufferError("Local: Queue full")
            self.queued.append((topic, key, partition, on_delivery))
            self.produced.append((topic, key, partition))

    def poll(self, timeout: float) -> int:
        if not self.deliver:
            threading.Event().wait(timeout)
            return 0
        with self.lock:
            queued, self.queued = self.queued, []
        for offset, (_, _, partition, report) in enumerate(queued):
            report(self.error, _Message(partition if partition is not None else 3, offset))
        if not queued:
            threading.Event().wait(min(timeout, 0.01))
        return len(queued)

    def flush(self, timeout: float) -> int:
        return len(self.queued)


async def test_a_send_completes_with_the_brokers_report() -> None:
    fake = FakeProducer()
    producer = AsyncProducer(fake)  # type: ignore[arg-type]
    try:
        delivered = await producer.send("routed", b"doc-1", b"v", None)
        assert await asyncio.wait_for(delivered, 5) == (3, 0)
        on_partition = await producer.send("routed", b"heartbeat", b"v", 7)
        assert (await asyncio.wait_for(on_partition, 5))[0] == 7
    finally:
        producer.close()
    assert fake.produced == [("routed", b"doc-1", None), ("routed", b"heartbeat", 7)]


async def test_a_failed_delivery_fails_the_send() -> None:
    producer = AsyncProducer(FakeProducer(error=KafkaError(KafkaError._MSG_TIMED_OUT)))  # type: ignore[arg-type]
    try:
        delivered = await producer.send("routed", b"doc-1", b"v", None)
        with pytest.raises(KafkaException):
            await asyncio.wait_for(delivered, 5)
    finally:
        producer.close()


async def test_a_full_queue_is_waited_out_and_nothing_is_dropped() -> None:
    fake = FakeProducer(full_times=2)
    producer = AsyncProducer(fake)  # type: ignore[arg-type]
    try:
        delivered = await producer.send("routed", b"doc-1", b"v", None)
        await asyncio.wait_for(delivered, 5)
    finally:
        producer.close()
    assert fake.produced == [("routed", b"doc-1", None)]


async def test_closing_reports_records_left_undelivered(caplog: pytest.LogCaptureFixture) -> None:
    producer = AsyncProducer(FakeProducer(deliver=False))  # type: ignore[arg-type]
    delivered = await producer.send("routed", b"doc-1", b"v", None)
    with caplog.at_level(logging.WARNING, logger="streams.async_producer"):
        assert producer.close(timeout_s=0.1) == 1
    assert "1 forwarded records were not acknowledged" in caplog.text
    assert not delivered.done()
