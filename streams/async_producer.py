"""An asyncio face on confluent-kafka's producer, for the router's forwards.

The router forwards every change it reads (agents/route_changes.py): during a bulk import that is
thousands of records a second, and a live edit read behind the import waits until they are all
forwarded. faust's own producer (aiokafka) costs about 0.3 ms of the event loop per record in Python;
librdkafka batches, compresses and retries in its own threads, and `produce` costs the loop a few
microseconds. The router measured alone in a worker (Debezium topics of a 38,000-row import, polls of
16 records): 1,010 records/s through faust's producer, 1,700 through this one (docs/benchmarks.md).

`send` returns a future that completes once the broker has the record (every replica, `acks=all`),
with its partition and offset, or fails with the delivery error. Records sent to one partition keep
their order, retries included (idempotence), and a key lands in the partition faust and the Java
clients put it in (murmur2, see clients.kafka_producer): a document's records stay in one partition
whichever producer wrote them.
A daemon thread serves librdkafka's delivery reports and hands each to the loop that sent it.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streams.clients import kafka_producer
from streams.settings import Settings

log = logging.getLogger(__name__)

# How long the delivery thread waits for a report before it looks whether it should stop.
POLL_S = 0.1


class AsyncProducer:
    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._deliver, name="forward-deliveries", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncProducer:
        return cls(kafka_producer(settings, **{"acks": "all", "enable.idempotence": True, "linger.ms": 5}))

    async def send(
        self, topic: str, key: bytes, value: bytes, partition: int | None = None
    ) -> asyncio.Future[tuple[int, int]]:
        """Hand one record to librdkafka (waiting while its queue is full); the returned future
        completes on the broker's acknowledgement."""
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[tuple[int, int]] = loop.create_future()

        def report(error: KafkaError | None, message: Message[bytes, bytes]) -> None:
            loop.call_soon_threadsafe(_settle, delivered, error, message)

        while True:
            try:
                if partition is None:
                    self._producer.produce(topic, value=value, key=key, on_delivery=report)
                else:
                    self._producer.produce(topic, value=value, key=key, partition=partition, on_delivery=report)
                return delivered
            except BufferError:  # librdkafka's queue is full: the delivery thread drains it
                await asyncio.sleep(POLL_S)

    def close(self, timeout_s: float = 30.0) -> int:
        """Wait up to `timeout_s` for the records still queued; how many were left undelivered."""
        self._stopping.set()
        self._thread.join()
        left = self._producer.flush(timeout_s)
        if left:
            log.warning("%d forwarded records were not acknowledged before the producer closed", left)
        return int(left)

    def _deliver(self) -> None:
        while not self._stopping.is_set():
            self._producer.poll(POLL_S)


def _settle(
    delivered: asyncio.Future[tuple[int, int]], error: KafkaError | None, message: Message[bytes, bytes]
) -> None:
    if delivered.done():  # cancelled by its sender
        return
    if error is not None:
        delivered.set_exception(KafkaException(error))
    else:
        delivered.set_result((message.partition() or 0, message.offset() or 0))
