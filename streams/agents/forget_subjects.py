"""The deletion lane's agent: its own agent, so a request never waits behind the embedding backlog.

It decodes a request, validates it once, and hands it to the forget package (streams/forget/), which
holds the lane's logic; this module owns only the faust side: the topics a request writes (the
ledger, the receipts, the dead letters) and the purge scheduler the agent starts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from streams import avro
from streams.agents.follow_ledger import wait_applied
from streams.agents.runtime import Runtime, get_runtime
from streams.app import app, dead_letter_topic, deletion_topic, receipts_topic, settings
from streams.errors import DecodeError, InvalidRequest, StreamsError
from streams.forget.dead_letters import tombstone_dead_letters
from streams.forget.lane import ForgetLane, LaneIO
from streams.forget.purge import PurgeScheduler
from streams.forget.receipt import Receipt
from streams.forget.request import decode_request, parse_request
from streams.observability.dead_letters import dead_letter_key, encode_dead_letter
from streams.records import Origin

log = logging.getLogger(__name__)

_scheduler: PurgeScheduler | None = None
_resuming: list[asyncio.Task[None]] = []


async def _publish_receipt(receipt: Receipt) -> None:
    future = await receipts_topic.send(
        key=receipt.request_id.encode(),
        value=avro.encode("deletion_receipt", receipt.to_dict(), settings.schema_registry_url),
    )
    await future


async def _publish_ledger(entries: dict[str, str], request_id: str) -> dict[int, int]:
    """Keyed hashes only: the ledger topic is not a list of forgotten people. Returns, per partition,
    the offset past the last entry written: what every worker must have applied (follow_ledger.py)."""
    now = datetime.now(UTC)
    topic = app.topic(settings.ledger_topic, key_type=bytes, value_type=bytes)
    written: dict[int, int] = {}
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
            await topic.send(
                key=digest.encode(), value=avro.encode("forget_ledger_entry", entry, settings.schema_registry_url)
            )
        )
    # Acknowledged together: one round trip to the brokers, not one per entry.
    for metadata in await asyncio.gather(*sent):
        written[metadata.partition] = max(written.get(metadata.partition, 0), metadata.offset + 1)
    return written


async def _send_dead_letter(origin: Origin, record: dict[str, object]) -> None:
    future = await dead_letter_topic.send(
        key=dead_letter_key(origin), value=encode_dead_letter(record, settings.schema_registry_url)
    )
    await future


def _tombstone(identifiers: set[str], mentions: Callable[[str], int], prefilter: Callable[[str], bool]) -> int:
    return tombstone_dead_letters(settings, identifiers, mentions, could_mention=prefilter)


def build_lane(runtime: Runtime) -> ForgetLane:
    """The lane with this worker's Kafka side."""
    io = LaneIO(
        publish_ledger=_publish_ledger,
        wait_applied=lambda written: wait_applied(runtime.es, written),
        send_receipt=_publish_receipt,
        send_dead_letter=_send_dead_letter,
        tombstone=_tombstone,
    )
    return ForgetLane(settings, runtime, io)


def build_scheduler(runtime: Runtime) -> PurgeScheduler:
    return PurgeScheduler(
        runtime.es,
        lambda: ",".join(expression for expression, _ in runtime.forget_groups()),
        window_s=settings.purge_window_s,
        progress_index=settings.forget_progress_index,
        send_receipt=_publish_receipt,
    )


@app.agent(deletion_topic, concurrency=1)
async def forget_subjects(stream):  # type: ignore[no-untyped-def]
    global _scheduler
    runtime = await get_runtime(settings)
    lane = build_lane(runtime)
    if _scheduler is None:
        _scheduler = build_scheduler(runtime)
        _resuming.append(asyncio.create_task(_scheduler.resume()))  # kept: a task nobody holds may vanish
    async for event in stream.events():
        message = event.message
        try:
            record = decode_request(message.value, settings.schema_registry_url)
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
        _scheduler.schedule(receipt)
