"""The routing agent: Debezium topics (keyed by row) -> the repartition topic (keyed by document).

Debezium keys a change by its row, so a ticket and its comments arrive on different topics and
partitions, and with several workers two of them could write one document at the same moment. This
agent decodes and maps each change only to learn its document id, and forwards the Debezium record,
unchanged and with its origin, to `settings.routed_topic` under that key: every change to a document
then lands in one partition, which one worker of the group owns (index_changes.py).

A change to a source's heartbeat table (observability/capture_health.py) is no document: it is sent
to every partition of the repartition topic, so every worker's indexing loop receives each source's
heartbeats and its capture age (`/health`) measures the whole path, this agent included, whichever
partitions it owns.

What it cannot route it handles here, where the origin is the Debezium record itself: an event that
does not decode or map becomes a dead letter naming its topic, partition and offset; a skipped event
(a tombstone, an unmapped table) is counted. Forwards are awaited to the broker's
acknowledgement before the batch is acknowledged, so a crash replays the batch (a duplicate on the
repartition topic is harmless: every write is idempotent and ordered by version).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from streams import avro
from streams.agents.process_changes import RawMessage, SendDeadLetter
from streams.errors import DecodeError, StreamsError
from streams.observability import metrics
from streams.observability.dead_letters import dead_letter_record
from streams.pipeline.decode_change_event import DEFAULT_MAX_EVENT_BYTES, decode_change_event
from streams.pipeline.document_mapping import Mappings

log = logging.getLogger(__name__)

# (key, value, partition or None for the key's) -> an awaitable that completes once the broker has the record.
Forward = Callable[[bytes, bytes, int | None], Awaitable[Awaitable[object]]]


def encode_routed(message: RawMessage, registry_url: str | None = None) -> bytes:
    return avro.encode(
        "routed_change",
        {
            "origin_topic": message.topic,
            "origin_partition": message.partition,
            "origin_offset": message.offset,
            "key": message.key,
            "value": message.value,
        },
        registry_url,
    )


def decode_routed(value: bytes, registry_url: str | None = None) -> RawMessage:
    """The Debezium record a routed record carries, with its own origin. Raises DecodeError."""
    record = avro.decode("routed_change", value, registry_url)
    return RawMessage(
        record["origin_topic"], record["origin_partition"], record["origin_offset"], record["key"], record["value"]
    )


@dataclass
class RouteResult:
    forwarded: int = 0
    heartbeats: int = 0
    skipped: int = 0
    dead_lettered: int = 0


class ChangeRouter:
    def __init__(
        self,
        mappings: Mappings,
        forward: Forward,
        send_dead_letter: SendDeadLetter,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        registry_url: str | None = None,
        heartbeat_table: str = "streams_heartbeat",
        partitions: int = 1,
    ) -> None:
        self.mappings = mappings
        self.forward = forward
        self.send_dead_letter = send_dead_letter
        self.max_event_bytes = max_event_bytes
        self.registry_url = registry_url
        self.heartbeat_table = heartbeat_table
        self.partitions = partitions  # of the repartition topic: a heartbeat goes to each

    def _route_key(self, message: RawMessage) -> tuple[bool, bytes | None]:
        """(is a heartbeat, the key to route under); the key is None when there is nothing to route."""
        event = decode_change_event(
            message.topic,
            message.key,
            message.value,
            message.partition,
            message.offset,
            max_bytes=self.max_event_bytes,
        )
        if event is not None and event.table == self.heartbeat_table:
            return True, f"heartbeat:{event.source}".encode()
        change = self.mappings.part_change(event) if event is not None else None
        return False, change.document_id.encode() if change is not None else None

    async def route(self, messages: Sequence[RawMessage]) -> RouteResult:
        result = RouteResult()
        pending: list[Awaitable[object]] = []
        for message in messages:
            try:
                heartbeat, key = self._route_key(message)
            except StreamsError as exc:
                log.warning("dead letter: %s[%d]@%d: %s", message.topic, message.partition, message.offset, exc)
                await self.send_dead_letter(
                    message.origin, dead_letter_record(message.origin, message.key, message.value, exc)
                )
                result.dead_lettered += 1
                continue
            if key is None:
                metrics.EVENTS.labels(source=message.topic.split(".")[0], outcome="skipped").inc()
                result.skipped += 1
                continue
            routed = encode_routed(message, self.registry_url)
            if heartbeat:
                for partition in range(self.partitions):
                    pending.append(await self.forward(key, routed, partition))
                result.heartbeats += 1
                continue
            # Sent in order, awaited together: the producer keeps a partition's records in send order.
            pending.append(await self.forward(key, routed, None))
            result.forwarded += 1
        if pending:
            await asyncio.gather(*pending)
        return result


def unwrap_routed(
    value: bytes | None, topic: str, partition: int, offset: int, registry_url: str | None = None
) -> RawMessage:
    """The Debezium record inside a routed record; a routed record that is not one (written by
    something else) is passed on as it is, so the indexer dead-letters it with its own origin."""
    if value is not None:
        try:
            return decode_routed(value, registry_url)
        except DecodeError as exc:
            log.warning("%s[%d]@%d is not a routed change: %s", topic, partition, offset, exc)
    return RawMessage(topic, partition, offset, None, value)
