"""The indexing lanes' agents, each with one in-flight batch at a time (concurrency 1): faust could
otherwise commit an offset past a batch still being handled (a known faust issue).

- the router (not an agent: a consumer of its own, agents/router_consumer.py): Debezium topics (keyed
  by row) -> the repartition topic keyed by document id (agents/route_changes.py), so every document
  is written by one worker at a time; bulk work (snapshot reads, bursts from one source) goes to the
  backfill topic, keyed the same way;
- `index_changes`: the repartition topic -> the index (agents/process_changes.py);
- `index_backfill`: the backfill topic -> the index, in the time live batches leave (agents/lanes.py).
  Each routed record carries the change as the router decoded and mapped it, with the Debezium
  record and its origin, so freshness (from the source commit time) and dead letters (naming the
  Debezium topic, partition and offset) are those of the original event.

`register` adds the lanes to the worker's App and hands the router to the worker service, with the
service's settings, mappings, capture clock and runtime.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import faust

from streams.agents.lanes import bulk_to_backfill
from streams.agents.process_changes import ChangeProcessor
from streams.agents.route_changes import ChangeDecoder, ChangeRouter, unwrap_routed
from streams.agents.write_changes import WriteResult
from streams.clients import kafka_admin
from streams.observability import metrics
from streams.observability.dead_letters import dead_letter_key, encode_dead_letter
from streams.observability.freshness import observe_stages
from streams.records import Origin, RoutedChange
from streams.settings import Settings
from streams.sources.read_paths import PathLookup

if TYPE_CHECKING:
    from streams.agents.service import WorkerService

log = logging.getLogger(__name__)


def routed_partitions(settings: Settings) -> int:
    """The repartition topic's partition count as the broker has it (ensure_topics created it, or
    warned that it differs from STREAMS_DOCUMENT_PARTITIONS): each heartbeat goes to every one."""
    topic = kafka_admin(settings).list_topics(settings.routed_topic, timeout=30).topics.get(settings.routed_topic)
    count = len(topic.partitions) if topic is not None and topic.partitions else settings.document_partitions
    return count


def register(app: faust.App, service: WorkerService) -> None:
    settings, topics = service.settings, service.topics

    async def send_dead_letter(origin: Origin, record: dict[str, object]) -> None:
        # Awaited to the broker's acknowledgement: the event's offset must not move before its dead letter is safe.
        future = await topics.dead_letters.send(
            key=dead_letter_key(origin), value=encode_dead_letter(record, settings.schema_registry_url)
        )
        await future

    # Through librdkafka rather than faust's producer: a bulk import is forwarded at its pace.
    def forwarder(lane: str, topic: str):  # type: ignore[no-untyped-def]
        async def forward(key: bytes, value: bytes, partition: int | None = None) -> asyncio.Future[tuple[int, int]]:
            metrics.ROUTED.labels(lane=lane).inc()
            return await (await service.forwards()).send(topic, key, value, partition)

        return forward

    forward = forwarder("live", settings.routed_topic)
    forward_backfill = forwarder("backfill", settings.backfill_topic)

    def build_router() -> ChangeRouter:
        return ChangeRouter(
            service.mappings,
            forward,
            send_dead_letter,
            max_event_bytes=settings.max_event_bytes,
            registry_url=settings.schema_registry_url,
            heartbeat_table=settings.heartbeat_table,
            partitions=routed_partitions(settings),
            paths=PathLookup.of(settings, service.mappings),
            forward_backfill=forward_backfill,
            burst_events=settings.backfill_burst_events,
            burst_window_s=settings.backfill_burst_window_s,
            burst_bytes=settings.backfill_burst_bytes,
            burst_hold_s=settings.backfill_burst_hold_s,
        )

    # The router reads Debezium's topics through a consumer of its own, run by the worker service
    # (agents/router_consumer.py).
    service.route_with(build_router)

    async def index(stream, processor: ChangeProcessor) -> None:  # type: ignore[no-untyped-def]
        # Only for records a router that did not decode wrote before an upgrade.
        decoder = ChangeDecoder(service.mappings, settings.max_event_bytes, settings.heartbeat_table)
        async for events in stream.take_events(settings.batch_max_events, within=settings.batch_within_s):
            started_at = time.time()
            unwrapped = [
                (
                    unwrap_routed(
                        e.message.value,
                        e.message.topic,
                        e.message.partition,
                        e.message.offset,
                        decoder,
                        settings.schema_registry_url,
                    ),
                    e.message.timestamp,
                )
                for e in events
            ]
            if processor.lane == "live" and service.router is not None:
                unwrapped = await move_to_backfill(service.router, events, unwrapped)
            messages = [record for record, _ in unwrapped if record is not None]
            routed = [
                (record.commit_ts, routed_at)
                for record, routed_at in unwrapped
                if isinstance(record, RoutedChange) and record.change is not None and routed_at
            ]
            # process() handles every failure itself (retrying or dead-lettering): an exception escaping
            # here would let take_events acknowledge the batch unprocessed. For the same reason a
            # shutdown lets the batch finish: take_events acknowledges it on the way out.
            task = asyncio.ensure_future(process(processor, messages))
            try:
                result = await asyncio.shield(task)
            except asyncio.CancelledError:
                await task
                raise
            worst = observe_stages(processor.lane, routed, started_at, result.searchable_at)
            if result.applied or result.failed:
                log.info(
                    "%s batch of %d: %d applied, %d stale, %d suppressed, %d failed; %d chunks embedded, %d reused; "
                    "%s; longest route %.2fs, queue %.2fs",
                    processor.lane,
                    len(messages),
                    len(result.applied),
                    len(result.stale),
                    len(result.suppressed),
                    len(result.failed),
                    result.chunks_embedded,
                    result.chunks_reused,
                    str(result.phases) or "no stage timed",
                    worst.get("route", 0.0),
                    worst.get("queue", 0.0),
                )

    async def move_to_backfill(router: ChangeRouter, events: list, unwrapped: list) -> list:  # type: ignore[type-arg]
        """The batch without the changes of documents an import's first rows inserted into, forwarded
        to the backfill lane as they came (agents/lanes.py)."""
        batch = [
            (
                e.message.key,
                e.message.value,
                record.change.document_id if isinstance(record, RoutedChange) and record.change else None,
            )
            for e, (record, _) in zip(events, unwrapped, strict=True)
        ]
        kept, documents = await bulk_to_backfill(batch, router.now_bulk, forward_backfill)
        if documents:
            log.info(
                "live lane: %d changes of %d documents came in source transactions that proved large: "
                "moved to the backfill lane",
                len(batch) - len(kept),
                documents,
            )
        return [unwrapped[position] for position in kept]

    async def process(processor: ChangeProcessor, messages: list) -> WriteResult:  # type: ignore[type-arg]
        if processor.lane == "backfill":
            return await processor.process(messages)
        async with service.priority.live():  # the backfill lane waits while this batch is in flight
            return await processor.process(messages)

    @app.agent(topics.routed, name=f"{__name__}.index_changes", concurrency=1)
    async def index_changes(stream):  # type: ignore[no-untyped-def]
        runtime = await service.runtime()
        processor = ChangeProcessor(runtime.writer, send_dead_letter, runtime.freshness, capture=service.capture_clock)
        await index(stream, processor)

    @app.agent(topics.backfill, name=f"{__name__}.index_backfill", concurrency=1)
    async def index_backfill(stream):  # type: ignore[no-untyped-def]
        runtime = await service.runtime()
        processor = ChangeProcessor(runtime.writer, send_dead_letter, runtime.freshness, turn=service.priority.turn)
        await index(stream, processor)
