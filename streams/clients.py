"""Every client the project opens, built from the settings object, and the one way it reads a topic.

This module sits low: it imports only the settings and the project's errors, so `elastic/`,
`agents/`, `observability/`, `bench/`, the commands and the tests can all build their clients here.

Reading a topic means one thing everywhere: assign each partition at a start offset (by default
its low watermark) and read until the high watermark each partition had when reading began.
Nothing joins a consumer group to read: offsets are assigned, never committed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import cast

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from elasticsearch import AsyncElasticsearch, Elasticsearch

from streams.errors import StreamsError
from streams.settings import Settings

ELASTICSEARCH_TIMEOUT_S = 60


class TopicReadTimeout(StreamsError):
    """A topic was not read to its end before the deadline."""

    stage = "read"


# -- Elasticsearch --------------------------------------------------------------------------------


def elasticsearch_client(settings: Settings) -> Elasticsearch:
    return Elasticsearch(**settings.elasticsearch_client_options())


def async_elasticsearch_client(settings: Settings) -> AsyncElasticsearch:
    return AsyncElasticsearch(**settings.elasticsearch_client_options())


# -- Kafka clients --------------------------------------------------------------------------------


def unique_group(prefix: str) -> str:
    """A group id nobody else uses: for readers that assign partitions and never commit."""
    return f"{prefix}-{uuid.uuid4().hex}"


def kafka_consumer(settings: Settings, group_id: str, **extra: object) -> Consumer:
    """A consumer that never commits unless asked to (`enable.auto.commit` may be overridden)."""
    return Consumer(settings.kafka_config(**{"group.id": group_id, "enable.auto.commit": False, **extra}))


def kafka_producer(settings: Settings, **extra: object) -> Producer:
    return Producer(settings.kafka_config(**extra))


def kafka_admin(settings: Settings, **extra: object) -> AdminClient:
    config = cast(dict[str, str | int | float | bool], settings.kafka_config(**extra))
    return AdminClient(config)


# -- reading a topic ------------------------------------------------------------------------------


def partitions(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> list[int]:
    """The topic's partitions, or [] when it does not exist (yet)."""
    metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return []
    return sorted(metadata.partitions)


def watermarks(consumer: Consumer, topic: str, timeout_s: float = 10.0) -> dict[int, tuple[int, int]]:
    """(low, high) watermark per partition; {} when the topic does not exist."""
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
        for p in partitions(consumer, topic, timeout_s)
    }


def read_to_end(
    consumer: Consumer,
    topic: str,
    start: Mapping[int, int] | None = None,
    *,
    timeout_s: float = 30.0,
    deadline_s: float | None = None,
) -> Iterator[Message]:
    """Messages from `start` (per partition; default: the low watermark) up to the end the topic has now.

    Without `deadline_s` it reads until every partition reached its end (a reader that must see the
    whole topic, such as the ledger loader, would rather wait than load half of it); with one, it
    raises TopicReadTimeout when the deadline passes first. Errors on the topic raise KafkaException.
    """
    ends: dict[int, int] = {}
    assignment: list[TopicPartition] = []
    for partition, (low, high) in watermarks(consumer, topic, timeout_s).items():
        first = max(low, start.get(partition, low)) if start is not None else low
        if high > first:
            ends[partition] = high
            assignment.append(TopicPartition(topic, partition, first))
    if not assignment:
        return
    consumer.assign(assignment)
    deadline = None if deadline_s is None else time.monotonic() + deadline_s
    while ends:
        if deadline is not None and time.monotonic() > deadline:
            raise TopicReadTimeout(f"{topic}: partitions {sorted(ends)} not read to their end within {deadline_s:g} s")
        message = consumer.poll(1.0)
        if message is None:
            continue
        if message.error():
            raise KafkaException(message.error())
        at, offset = message.partition(), message.offset()
        if at is None or offset is None or offset >= ends.get(at, 0):
            continue  # written after reading began, to a partition already read to its end
        yield message
        if offset + 1 >= ends[at]:
            del ends[at]


def read_whole_topic(
    settings: Settings, topic: str, group_id: str, timeout_s: float = 30.0, deadline_s: float | None = None
) -> Iterator[Message]:
    """Every message of `topic` from its beginning to the end it had when reading started."""
    consumer = kafka_consumer(settings, group_id)
    try:
        yield from read_to_end(consumer, topic, timeout_s=timeout_s, deadline_s=deadline_s)
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """The high watermark of each partition of `topic` ({} when it does not exist)."""
    consumer = kafka_consumer(settings, unique_group("streams-ends"))
    try:
        return {p: high for p, (_, high) in watermarks(consumer, topic, timeout_s).items()}
    finally:
        consumer.close()


def consumer_at_end(settings: Settings, topics: Iterable[str], group_prefix: str, timeout_s: float = 10.0) -> Consumer:
    """A consumer assigned at the current end of every partition of `topics`, so that it sees only what is
    published after this call returns (a missing topic is watched on partition 0, where Kafka creates it)."""
    consumer = kafka_consumer(settings, unique_group(group_prefix))
    assignment: list[TopicPartition] = []
    for topic in topics:
        for partition in partitions(consumer, topic, timeout_s) or [0]:
            # The offset is resolved now, not left as OFFSET_END: that would be resolved at the first
            # poll, and a record published in between would be skipped.
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout_s)
            assignment.append(TopicPartition(topic, partition, max(high, 0)))
    consumer.assign(assignment)
    return consumer
