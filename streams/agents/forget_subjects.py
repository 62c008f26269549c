"""The deletion lane's agent: its own agent, so a request never waits behind the embedding backlog.

It decodes a request, validates it once, and hands it to the forget package (streams/forget/), which
holds the lane's logic. This module owns only the faust side: the topics a request writes (the
ledger, the receipts, the dead letters), through `DeletionTopics`, and the agent that `register`
adds to the worker's App. The worker service (agents/service.py) owns the purge scheduler and
resumes, at start, the purges a stopped worker left pending.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import faust
from faust.types import TopicT

from streams import avro
from streams.agents.follow_ledger import wait_applied
from streams.agents.runtime import Runtime
from streams.errors import DecodeError, InvalidRequest, StreamsError
from streams.forget.dead_letters import tombstone_dead_letters
from streams.forget.lane import ForgetLane, LaneIO
from streams.forget.purge import PurgeScheduler
from streams.forget.receipt import UNSEARCHABLE, Receipt
from streams.forget.request import decode_request, parse_request
from streams.forget.signing import ReceiptChain
from streams.observability.dead_letters import dead_letter_key, encode_dead_letter
from streams.records import Origin
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.agents.service import WorkerService


@dataclass(frozen=True)
class DeletionTopics:
    """What the lane writes to Kafka, on the topics its worker's App declared."""

    settings: Settings
    receipts: TopicT
    ledger: TopicT
    dead_letters: TopicT
    chain: ReceiptChain  # every receipt is signed and chained by this worker's chain (forget/signing.py)

    async def publish_receipt(self, receipt: Receipt) -> None:
        await self.chain.publish(receipt, self._send_receipt)

    async def _send_receipt(self, receipt: Receipt) -> None:
        value = avro.encode("deletion_receipt", receipt.to_dict(), self.settings.schema_registry_url)
        future = await self.receipts.send(key=receipt.request_id.encode(), value=value)
        await future

    async def publish_ledger(self, entries: dict[str, str], request_id: str) -> dict[int, int]:
        """Keyed hashes only: the ledger topic is not a list of forgotten people. Returns, per partition,
        the offset past the last entry written: what every worker must have applied (follow_ledger.py)."""
        now = datetime.now(UTC)
        registry = self.settings.schema_registry_url
        sent = []
        for digest, kind in sorted(entries.items()):
            entry = {
                "identifier": None,
                "pattern_hash": digest,
                "pattern_kind": kind,
                "request_id": request_id,
                "forgotten_at": now,
            }
            sent.append(
                await self.ledger.send(key=digest.encode(), value=avro.encode("forget_ledger_entry", entry, registry))
            )
        # Acknowledged together: one round trip to the brokers, not one per entry.
        written: dict[int, int] = {}
        for metadata in await asyncio.gather(*sent):
            written[metadata.partition] = max(written.get(metadata.partition, 0), metadata.offset + 1)
        return written

    async def send_dead_letter(self, origin: Origin, record: dict[str, object]) -> None:
        value = encode_dead_letter(record, self.settings.schema_registry_url)
        future = await self.dead_letters.send(key=dead_letter_key(origin), value=value)
        await future

    def tombstone(self, identifiers: set[str], mentions: Callable[[str], int], prefilter: Callable[[str], bool]) -> int:
        return tombstone_dead_letters(self.settings, identifiers, mentions, could_mention=prefilter)


def build_lane(topics: DeletionTopics, runtime: Runtime) -> ForgetLane:
    """The lane with this worker's Kafka side."""
    io = LaneIO(
        publish_ledger=topics.publish_ledger,
        wait_applied=lambda written: wait_applied(runtime.es, written, topics.settings),
        send_receipt=topics.publish_receipt,
        send_dead_letter=topics.send_dead_letter,
        tombstone=topics.tombstone,
    )
    return ForgetLane(topics.settings, runtime, io)


def build_scheduler(topics: DeletionTopics, runtime: Runtime) -> PurgeScheduler:
    return PurgeScheduler(
        runtime.es,
        lambda: ",".join(expression for expression, _ in runtime.forget_groups()),
        window_s=topics.settings.purge_window_s,
        progress_index=topics.settings.forget_progress_index,
        send_receipt=topics.publish_receipt,
    )


def register(app: faust.App, service: WorkerService) -> None:
    """The deletion lane's agent, on the deletion topic: one request at a time, in order."""
    registry = service.settings.schema_registry_url

    @app.agent(service.topics.deletion, name=f"{__name__}.forget_subjects", concurrency=1)
    async def forget_subjects(stream):  # type: ignore[no-untyped-def]
        lane = build_lane(service.deletion, await service.runtime())
        purges = await service.purges()
        async for event in stream.events():
            message = event.message
            try:
                record = decode_request(message.value, registry)
            except DecodeError as exc:
                await lane.reject(message, None, exc)
                continue
            try:
                request = parse_request(record)
            except InvalidRequest as exc:
                await lane.reject(message, record, exc)
                continue
            receipt = await lane.handle_with_retries(request)
            if isinstance(receipt, StreamsError):
                await lane.fail(message, request, receipt)
                continue
            if receipt.status == UNSEARCHABLE:  # nothing_indexed: nothing was deleted, nothing to purge
                purges.schedule(receipt)
