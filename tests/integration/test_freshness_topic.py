"""Freshness reports and consumer lag against the real Kafka of the local stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from streams.clients import kafka_admin, kafka_consumer, kafka_producer, read_whole_topic, unique_group
from streams.observability.commands import read_latest_report
from streams.observability.consumer_lag import ConsumerLagReader
from streams.observability.freshness import FreshnessWindow
from streams.observability.freshness_report import (
    decode_freshness_report,
    encode_freshness_report,
    freshness_report_record,
    report_key,
)
from streams.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(local_stack: Settings) -> Iterator[str]:
    """A fresh two-partition topic, deleted afterwards, so the real freshness topic is left alone."""
    name = f"streams.test.freshness.{uuid.uuid4().hex[:12]}"
    admin = kafka_admin(local_stack)
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(timeout=30)
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


def _publish(settings: Settings, topic: str, window_end: datetime, wiki_values: list[float]) -> bytes:
    """What the worker's timer does, minus faust: close a window, build the record, encode, send, await."""
    window = FreshnessWindow(settings.sources)
    for value in wiki_values:
        window.observe("wiki", value)
    _, _, closed = window.close_window()
    record = freshness_report_record("it-worker", window_end - timedelta(seconds=10), window_end, closed)
    value = encode_freshness_report(record, settings.schema_registry_url)
    producer = kafka_producer(settings, acks="all")
    errors: list[object] = []
    producer.produce(topic, key=report_key("it-worker"), value=value, on_delivery=lambda err, _: errors.append(err))
    assert producer.flush(30) == 0
    assert errors == [None]
    return value


def test_a_published_report_reads_back(local_stack: Settings, topic: str) -> None:
    end = datetime.now(UTC).replace(microsecond=0)
    _publish(local_stack, topic, end, [0.4, 0.9, 2.5])

    messages = list(read_whole_topic(local_stack, topic, unique_group("it"), deadline_s=60))
    assert len(messages) == 1
    message = messages[0]
    assert message.key() == b"it-worker"
    report = decode_freshness_report(message.value() or b"")
    assert report["worker_id"] == "it-worker"
    assert report["window_end"] == end
    sources = {s["source"]: s for s in report["sources"]}
    assert set(sources) == set(local_stack.sources)
    assert (sources["wiki"]["events"], sources["wiki"]["p50_s"], sources["wiki"]["max_s"]) == (3, 0.9, 2.5)
    assert (sources["tickets"]["events"], sources["tickets"]["oldest_unindexed_age_s"]) == (0, 0.0)


def test_streams_freshness_from_topic_shows_the_latest_report(local_stack: Settings, topic: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    _publish(local_stack, topic, now - timedelta(seconds=10), [1.0])
    _publish(local_stack, topic, now, [5.0])
    report = read_latest_report(local_stack.model_copy(update={"freshness_topic": topic}), timeout_s=15)
    assert report["window_end"] == now
    assert {s["source"]: s["max_s"] for s in report["sources"]}["wiki"] == 5.0


def test_consumer_lag_counts_what_the_group_has_not_committed(local_stack: Settings, topic: str) -> None:
    producer = kafka_producer(local_stack)
    for n in range(5):
        producer.produce(topic, value=b"x", partition=0, key=str(n).encode())
    assert producer.flush(30) == 0
    group = f"it-lag-{uuid.uuid4().hex}"
    reader = ConsumerLagReader(local_stack, group)
    try:
        assert reader.lag([topic, "streams.test.no-such-topic"]) == {(topic, 0): 5, (topic, 1): 0}
        committer = kafka_consumer(local_stack, group)
        committer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
        committer.close()
        assert reader.lag([topic])[(topic, 0)] == 3
    finally:
        reader.close()


def test_the_lag_of_a_topic_read_by_another_group_comes_from_that_group(local_stack: Settings, topic: str) -> None:
    # The router reads Debezium's topics in a group of its own (agents/router_consumer.py): the worker's
    # lag takes their offsets from it, or a topic the worker's group no longer reads would count from its
    # first record. The check can fail: without the mapping, the same topic reads 5 behind.
    producer = kafka_producer(local_stack)
    for n in range(5):
        producer.produce(topic, value=b"x", partition=0, key=str(n).encode())
    assert producer.flush(30) == 0
    worker, router = f"it-lag-{uuid.uuid4().hex}", f"it-lag-router-{uuid.uuid4().hex}"
    committer = kafka_consumer(local_stack, router)
    committer.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    committer.close()
    both = ConsumerLagReader(local_stack, worker, {topic: router})
    worker_alone = ConsumerLagReader(local_stack, worker)
    try:
        assert both.lag([topic])[(topic, 0)] == 1
        assert worker_alone.lag([topic])[(topic, 0)] == 5
    finally:
        both.close()
        worker_alone.close()
