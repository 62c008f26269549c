"""The router's own Kafka consumer: Debezium's topics read through librdkafka, beside faust.

The lanes' streams are faust's (agents/index_changes.py); the router's is not. faust polls 16 records
at a time for the lanes' flow control (streams/app.py) and hands each poll across threads, so a router
on a faust stream spent about two thirds of a bulk import waiting for its next records, and routed
about 1,000 changes a second while an import wrote 4,600: a live edit committed behind the import's
rows waited for all of them. librdkafka fetches ahead in its own threads, so a poll here returns at
once with up to a batch of records whenever the topics hold them.

The loop, one batch at a time (`RouterLoop.run`):
1. poll a batch (a thread of its own makes every call on the consumer);
2. route it (agents/route_changes.py): its dead letters written, its forwards sent in order;
3. wait for the previous batch's forwards to be acknowledged, then commit that batch's offsets.

So the broker acknowledges one batch's forwards while the next is routed, and an offset is committed
only once everything before it is on the repartition topics: a crash, or a partition taken away by a
rebalance, replays what was routed since the last commit (a duplicate forward is harmless: every write
is idempotent and ordered by version). A forward that fails stops the loop, and with it the worker,
before any later offset is committed. A consumer that fails for good (fenced) is replaced.

The consumer group is the worker's own with `.router` after it, so that both consumers of a worker
keep their static memberships. On its first start after an upgrade (no offsets of its own), it starts
each partition where the worker's group, which read these topics through faust before, had committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.clients import kafka_consumer
from streams.pipeline.document_mapping import Mappings
from streams.records import RawMessage
from streams.settings import Settings
from streams.topics import source_topics

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
# How long the loop waits before it opens a new consumer in place of one that failed for good.
REOPEN_S = 1.0


def is_fatal(exc: KafkaException) -> bool:
    """Whether a consumer that raised `exc` can no longer be used (a fenced static member among them)."""
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and (error.fatal() or error.code() == KafkaError.FENCED_INSTANCE_ID)


def close_quietly(source: RouterSource) -> None:
    try:
        source.close()
    except (KafkaException, RuntimeError) as exc:  # a consumer that failed for good may refuse to close
        log.warning("router: closing its consumer: %s", exc)


def router_member(settings: Settings, mappings: Mappings) -> str | None:
    """The router's static member id: its topics' digest in it, so that a worker restarted with a source
    added joins as a new member and is assigned the new source's topics (Settings.group_instance_id)."""
    return settings.group_instance_id(source_topics(mappings, settings))


class RouterSource(Protocol):
    """What the loop needs of a consumer (RouterConsumer; a unit test's fake)."""

    def poll(self) -> list[RawMessage]: ...

    def commit(self, offsets: dict[tuple[str, int], int]) -> None: ...

    def close(self) -> None: ...


class RouterConsumer:
    """Debezium's topics, a batch at a time, for the router's group; every method blocks (the loop
    calls each in its consumer thread)."""

    def __init__(
        self,
        settings: Settings,
        topics: Iterable[str],
        batch_max_events: int,
        within_s: float,
        instance_id: str | None = None,
    ) -> None:
        self.topics = sorted(set(topics))
        self.batch_max_events = batch_max_events
        self.within_s = within_s
        extra: dict[str, object] = {
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(settings.worker_session_timeout_s * 1000),
        }
        if instance_id:
            extra["group.instance.id"] = instance_id
        self.settings = settings
        self.consumer: Consumer = kafka_consumer(settings, settings.router_group_id, **extra)
        self.consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def poll(self) -> list[RawMessage]:
        """Up to a batch of records, waiting at most `within_s` for the batch to fill."""
        messages = self.consumer.consume(self.batch_max_events, timeout=self.within_s)
        return [raw for raw in (self._raw(message) for message in messages) if raw is not None]

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit the next offset to read of each (topic, partition), synchronously."""
        if offsets:
            self.consumer.commit(
                offsets=[TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()],
                asynchronous=False,
            )

    def close(self) -> None:
        self.consumer.close()

    @staticmethod
    def _raw(message: Message) -> RawMessage | None:
        error = message.error()
        if error is None:
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            assert topic is not None and partition is not None and offset is not None  # a record's, not an event's
            return RawMessage(topic, partition, offset, message.key(), message.value())
        if error.code() == KafkaError._PARTITION_EOF:
            return None
        if error.fatal():
            raise KafkaException(error)
        # A topic not created yet (a table without rows) or a broker away: librdkafka retries by itself.
        log.warning("router consumer: %s", error)
        return None

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each new partition at the router group's offset, else at the worker group's."""
        committed = consumer.committed(partitions, timeout=TIMEOUT_S) if partitions else []
        unset = [tp for tp in committed if tp.offset == OFFSET_INVALID]
        taken_over = 0
        if unset:
            asked = [TopicPartition(tp.topic, tp.partition) for tp in unset]
            # Reads the worker group's offsets without joining it: where faust's router had got to.
            before = kafka_consumer(self.settings, self.settings.worker_id)
            try:
                earlier = {
                    (tp.topic, tp.partition): tp.offset
                    for tp in before.committed(asked, timeout=TIMEOUT_S)
                    if tp.offset >= 0
                }
            finally:
                before.close()
            for tp in unset:
                if (tp.topic, tp.partition) in earlier:
                    tp.offset = earlier[(tp.topic, tp.partition)]
                    taken_over += 1
        log.info("router assigned %d partitions of %d topics", len(committed), len({tp.topic for tp in committed}))
        consumer.assign(committed)
        if taken_over:
            # Committed as the router's at once: the worker group's offsets are read this once.
            consumer.commit(offsets=[tp for tp in unset if tp.offset >= 0], asynchronous=False)
            log.info("router: %d partitions start where the worker's group had committed", taken_over)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("router: %d partitions revoked", len(partitions))
        consumer.unassign()


def offsets_after(messages: Sequence[RawMessage]) -> dict[tuple[str, int], int]:
    """The offset to commit for each (topic, partition) of `messages`: one past the last."""
    offsets: dict[tuple[str, int], int] = {}
    for message in messages:
        key = (message.topic, message.partition)
        offsets[key] = max(offsets.get(key, 0), message.offset + 1)
    return offsets


# A batch of messages routed -> an awaitable that completes once the broker has all its forwards.
Dispatch = Callable[[Sequence[RawMessage]], Awaitable[Awaitable[object]]]


class RouterLoop:
    """Polls, routes and commits (see the module's docstring) until `stop`."""

    def __init__(
        self,
        source: Callable[[], RouterSource],
        dispatch: Dispatch,
        on_batch: Callable[[int], None] = lambda size: None,
    ) -> None:
        self._open = source  # called in the consumer thread: it connects and subscribes
        self._dispatch = dispatch
        self._on_batch = on_batch  # each batch's size, once it is routed (the lanes' priority)
        self._stopping = asyncio.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router-consumer")
        self.committed: dict[tuple[str, int], int] = {}  # the offsets committed so far, by this loop

    def stop(self) -> None:
        """Finish the batch in hand, commit it once delivered, close the consumer."""
        self._stopping.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def call(function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
            return loop.run_in_executor(self._thread, function, *args)

        source: RouterSource = await call(self._open)
        in_flight: tuple[Awaitable[object], dict[tuple[str, int], int]] | None = None
        try:
            while not self._stopping.is_set():
                try:
                    messages = await call(source.poll)
                    delivered = await self._dispatch(messages) if messages else None
                    if in_flight is not None:  # the previous batch, acknowledged while this one was routed
                        await self._settle(source, in_flight, call)
                        in_flight = None
                    if delivered is not None:
                        in_flight = (delivered, offsets_after(messages))
                    self._on_batch(len(messages))
                except KafkaException as exc:
                    if not is_fatal(exc):
                        raise
                    # A static member is fenced when it rejoins under a new member id (after a broker
                    # restart, say): the consumer is unusable, and a new one takes its partitions back.
                    log.warning(
                        "router: its consumer failed (%s); a new one takes over, and what was routed since"
                        " the last commit is routed again",
                        exc,
                    )
                    in_flight = None
                    await call(close_quietly, source)
                    await asyncio.sleep(REOPEN_S)
                    source = await call(self._open)
            if in_flight is not None:
                await self._settle(source, in_flight, call)
        finally:
            await call(close_quietly, source)
            self._thread.shutdown(wait=False)

    async def _settle(
        self,
        source: RouterSource,
        batch: tuple[Awaitable[object], dict[tuple[str, int], int]],
        call: Callable[..., Awaitable[Any]],
    ) -> None:
        delivered, offsets = batch
        await delivered  # raises the first delivery error: nothing from here on is committed
        try:
            await call(source.commit, offsets)
        except KafkaException as exc:
            if is_fatal(exc):
                raise
            # A broker or coordinator away: the next commit covers these offsets, and a restart before
            # it routes them again.
            log.warning("router: offsets not committed, the next commit covers them: %s", exc)
            return
        self.committed.update(offsets)
