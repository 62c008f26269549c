"""One batch of Debezium messages, start to finish: decode, map, write, dead-letter, measure.

`process` never raises for a bad event: an event that can never be processed becomes a dead letter
and the rest of the batch goes on. Transient failures (Elasticsearch down or overloaded) are retried
here, with backoff, for as long as it takes: the batch is not acknowledged, and so no offset moves,
until Elasticsearch has acknowledged every write of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from streams.elastic.write_documents import DocumentWriter, WriteResult
from streams.errors import IndexingError, RetryableError, StreamsError
from streams.observability import metrics
from streams.observability.capture_health import CaptureClock
from streams.observability.dead_letters import dead_letter_record
from streams.observability.freshness import FreshnessWindow
from streams.pipeline.decode_change_event import decode_change_event
from streams.pipeline.document_mapping import Mappings
from streams.records import Origin, PartChange

log = logging.getLogger(__name__)

SendDeadLetter = Callable[[Origin, dict[str, object]], Awaitable[None]]


@dataclass(frozen=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def origin(self) -> Origin:
        return Origin(self.topic, self.partition, self.offset)


class ChangeProcessor:
    def __init__(
        self,
        mappings: Mappings,
        writer: DocumentWriter,
        send_dead_letter: SendDeadLetter,
        freshness: FreshnessWindow,
        max_backoff_s: float = 10.0,
        capture: CaptureClock | None = None,
        heartbeat_table: str = "streams_heartbeat",
    ) -> None:
        self.mappings = mappings
        self.writer = writer
        self.send_dead_letter = send_dead_letter
        self.freshness = freshness
        self.max_backoff_s = max_backoff_s
        self.capture = capture
        self.heartbeat_table = heartbeat_table

    async def process(self, messages: Sequence[RawMessage]) -> WriteResult:
        started = time.monotonic()
        changes: list[PartChange] = []
        raw_by_origin: dict[Origin, RawMessage] = {}
        for message in messages:
            raw_by_origin[message.origin] = message
            try:
                event = decode_change_event(
                    message.topic, message.key, message.value, message.partition, message.offset
                )
                change = self.mappings.part_change(event) if event is not None else None
            except StreamsError as exc:
                await self._dead_letter(message, exc)
                continue
            if event is not None and self.capture is not None:
                self.capture.received(event.source, event.commit_ts)
            if event is not None and event.table == self.heartbeat_table:
                # Capture health only (see observability/capture_health.py): never a document.
                metrics.EVENTS.labels(source=event.source, outcome="heartbeat").inc()
                continue
            if change is None:
                metrics.EVENTS.labels(source=message.topic.split(".")[0], outcome="skipped").inc()
                continue
            changes.append(change)
        if changes:
            oldest = min(change.commit_ts for change in changes)
            metrics.OLDEST_UNINDEXED_AGE.labels(source=changes[0].source).set(_age_s(oldest))
            result = await self._write_with_retry(changes)
            await self._settle(result, raw_by_origin)
            for source in {change.source for change in changes}:
                metrics.OLDEST_UNINDEXED_AGE.labels(source=source).set(0)
        else:
            result = WriteResult()
        metrics.BATCH_SECONDS.observe(time.monotonic() - started)
        return result

    async def _write_with_retry(self, changes: list[PartChange]) -> WriteResult:
        backoff = 0.25
        while True:
            try:
                return await self._write_isolating(changes)
            except RetryableError as exc:
                metrics.RETRIES.labels(stage=exc.stage).inc()
                log.warning("transient failure, retrying the batch in %.1fs: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def _write_isolating(self, changes: list[PartChange]) -> WriteResult:
        """Write the batch; if the batch as a whole fails for good, find the culprit one change at a time."""
        try:
            return await self.writer.write(changes)
        except (RetryableError, asyncio.CancelledError):
            raise
        except Exception as exc:
            if len(changes) == 1:
                error = exc if isinstance(exc, StreamsError) else IndexingError(f"{type(exc).__name__}: {exc}")
                return WriteResult(failed=[(changes[0], error)])
            log.warning("batch of %d failed (%s); retrying one change at a time", len(changes), exc)
            merged = WriteResult()
            for change in changes:
                _merge(merged, await self._write_isolating([change]))
            return merged

    async def _settle(self, result: WriteResult, raw_by_origin: dict[Origin, RawMessage]) -> None:
        searchable_at = result.searchable_at or datetime.now(UTC)
        for change in result.applied:
            freshness_s = (searchable_at - change.commit_ts).total_seconds()
            operation = "delete" if change.deleted else "upsert"
            metrics.FRESHNESS.labels(source=change.source, table=change.table, operation=operation).observe(
                max(freshness_s, 0.0)
            )
            self.freshness.observe(change.source, freshness_s)
            metrics.EVENTS.labels(source=change.source, outcome="applied").inc()
        for change in result.stale:
            metrics.EVENTS.labels(source=change.source, outcome="stale").inc()
        for change in result.suppressed:
            metrics.EVENTS.labels(source=change.source, outcome="suppressed").inc()
        metrics.CHUNKS_EMBEDDED.inc(result.chunks_embedded)
        metrics.CHUNKS_REUSED.inc(result.chunks_reused)
        metrics.CHUNKS_DELETED.inc(result.chunks_deleted)
        for change, error in result.failed:
            metrics.EVENTS.labels(source=change.source, outcome="failed").inc()
            raw = raw_by_origin.get(change.origin) if change.origin else None
            if raw is None:
                log.error("failed change without origin: %s: %s", change.document_id, error)
                continue
            await self._dead_letter(raw, error, sorted(change.subjects))

    async def _dead_letter(
        self, message: RawMessage, error: BaseException, subjects: list[str] | None = None
    ) -> None:
        log.warning(
            "dead letter: %s[%d]@%d: %s", message.topic, message.partition, message.offset, error
        )
        record = dead_letter_record(message.origin, message.key, message.value, error, subjects)
        await self.send_dead_letter(message.origin, record)


def _merge(total: WriteResult, part: WriteResult) -> None:
    total.applied += part.applied
    total.stale += part.stale
    total.suppressed += part.suppressed
    total.failed += part.failed
    total.chunks_embedded += part.chunks_embedded
    total.chunks_reused += part.chunks_reused
    total.chunks_deleted += part.chunks_deleted
    total.searchable_at = part.searchable_at or total.searchable_at


def _age_s(moment: datetime) -> float:
    return max((datetime.now(UTC) - moment).total_seconds(), 0.0)
