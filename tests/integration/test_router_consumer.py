"""The router's consumer on the real broker (agents/router_consumer.py): on its first start it begins
each partition where the worker's group had committed (a router that read the topics through faust
before an upgrade), from then on where it committed itself; with neither, at the beginning.

The check can fail: a router group that starts where nobody committed reads from the first record,
and one that took the worker group's offsets again would go back to them after committing its own.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from streams.agents.router_consumer import RouterConsumer
from streams.clients import kafka_admin, kafka_consumer, kafka_producer
from streams.records import RawMessage
from streams.settings import Settings

RECORDS = 30


def _topic_with_records(settings: Settings) -> str:
    name = f"streams.test.router.{uuid.uuid4().hex[:8]}"
    admin = kafka_admin(settings)
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    producer = kafka_producer(settings)
    for number in range(RECORDS):
        producer.produce(name, key=f"row:{number}".encode(), value=f"{number}".encode())
    assert producer.flush(30) == 0
    return name


def _first_poll(consumer: RouterConsumer, timeout_s: float = 30.0) -> list[RawMessage]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if messages := consumer.poll():
            return messages
    raise AssertionError("the router consumer read nothing")


def _scratch(settings: Settings) -> Settings:
    return settings.model_copy(update={"worker_id": f"streams-test-router-{uuid.uuid4().hex[:8]}"})


def test_the_router_starts_where_the_worker_group_had_committed_then_where_it_did(local_stack: Settings) -> None:
    settings = _scratch(local_stack)
    topic = _topic_with_records(settings)
    before = kafka_consumer(settings, settings.worker_id)  # the worker's group, as faust left it
    before.commit(offsets=[TopicPartition(topic, 0, 12)], asynchronous=False)
    before.close()

    first = RouterConsumer(settings, [topic], batch_max_events=5, within_s=0.2)
    try:
        messages = _first_poll(first)
        assert messages[0].offset == 12
        first.commit({(topic, 0): 20})
    finally:
        first.close()

    again = RouterConsumer(settings, [topic], batch_max_events=5, within_s=0.2)
    try:
        assert _first_poll(again)[0].offset == 20
    finally:
        again.close()


def test_a_router_nobody_committed_for_reads_from_the_beginning(local_stack: Settings) -> None:
    settings = _scratch(local_stack)
    topic = _topic_with_records(settings)
    consumer = RouterConsumer(settings, [topic], batch_max_events=RECORDS, within_s=0.2)
    try:
        messages = _first_poll(consumer)
        assert messages[0].offset == 0
        assert [message.value for message in messages] == [f"{n}".encode() for n in range(len(messages))]
    finally:
        consumer.close()
