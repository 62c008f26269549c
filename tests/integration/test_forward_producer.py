"""The router's producer on the real broker: a key lands in the partition faust's producer (aiokafka,
murmur2 like the Java clients) puts it in, so a document's records stay in one partition of the
repartition topics across an upgrade of the router; records of one partition keep their send order.

The check can fail: librdkafka's own default partitioner (CRC32) puts most of the same keys elsewhere.
"""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka.admin import NewTopic

from streams.async_producer import AsyncProducer
from streams.clients import kafka_admin, kafka_producer
from streams.settings import Settings

PARTITIONS = 12
KEYS = [f"tickets:{number}".encode() for number in range(200)]


def _topic(settings: Settings) -> str:
    name = f"streams.test.forwards.{uuid.uuid4().hex[:8]}"
    admin = kafka_admin(settings)  # kept until the topic exists: a client collected on the way cancels it
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)
    return name


async def _partitions(producer: AsyncProducer, topic: str) -> list[tuple[int, int]]:
    try:
        sent = [await producer.send(topic, key, b"{}") for key in KEYS]
        return [await delivered for delivered in sent]
    finally:
        producer.close()


async def test_keys_land_where_faust_puts_them_and_keep_their_order(local_stack: Settings) -> None:
    topic = _topic(local_stack)
    delivered = await _partitions(AsyncProducer.from_settings(local_stack), topic)
    faust_partition = DefaultPartitioner()
    everything = list(range(PARTITIONS))
    assert [partition for partition, _ in delivered] == [faust_partition(key, everything, everything) for key in KEYS]
    by_partition: dict[int, list[int]] = {}
    for partition, offset in delivered:
        by_partition.setdefault(partition, []).append(offset)
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())


async def test_librdkafkas_default_partitioner_would_split_documents(local_stack: Settings) -> None:
    topic = _topic(local_stack)
    crc32 = AsyncProducer(kafka_producer(local_stack, partitioner="consistent_random", acks="all"))
    delivered = await _partitions(crc32, topic)
    faust_partition = DefaultPartitioner()
    everything = list(range(PARTITIONS))
    faust_partitions = [faust_partition(key, everything, everything) for key in KEYS]
    moved = sum(partition != wanted for (partition, _), wanted in zip(delivered, faust_partitions, strict=True))
    assert moved > len(KEYS) // 2
