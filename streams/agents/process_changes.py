"""One batch of routed changes, start to finish: write, dead-letter, measure.

The router has decoded and mapped every change (agents/route_changes.py); each carries its
Debezium record, which a dead letter keeps, and its origin, which a dead letter names.

`process` never raises for a bad event: an event that can never be processed becomes a dead letter
and the rest of the batch goes on. Transient failures (Elasticsearch down or overloaded) are retried
here, with backoff, for as long as it takes: the batch is not acknowledged, and so no offset moves,
until Elasticsearch has acknowledged every write of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from streams.agents.lanes import Turn
from streams.agents.write_changes import Writer, WriteResult
from streams.errors import IndexingError, StreamsError, is_transient
from streams.observability import metrics
from streams.observability.capture_health import CaptureClock
from streams.observability.dead_letters import SendDeadLetter, dead_letter_record
from streams.observability.freshness import FreshnessWindow, Lane, observe_freshness
from streams.records import Origin, PartChange, RawMessage, RoutedChange, UnreadableRecord
from streams.retrying import retry_transient

log = logging.getLogger(__name__)


class ChangeProcessor:
    def __init__(
        self,
        writer: Writer,
        send_dead_letter: SendDeadLetter,
        freshness: FreshnessWindow,
        max_backoff_s: float = 10.0,
        capture: CaptureClock | None = None,
        turn: Turn | None = None,
    ) -> None:
        self.writer = writer
        # The backfill lane's (agents/lanes.py): its writes yield to live batches, and its changes are
        # the snapshot phase of freshness, reported apart from the live promise.
        self.turn = turn
        self.lane: Lane = "live" if turn is None else "backfill"
        self.send_dead_letter = send_dead_letter
        self.freshness = freshness
        self.max_backoff_s = max_backoff_s
        self.capture = capture

    async def process(self, records: Sequence[RoutedChange | UnreadableRecord]) -> WriteResult:
        started = time.monotonic()
        changes: list[PartChange] = []
        raw_by_origin: dict[Origin, RawMessage] = {}
        for record in records:
            if isinstance(record, UnreadableRecord):
                await self._dead_letter(record.message, record.error)
                continue
            if self.capture is not None:
                self.capture.received(record.source, record.commit_ts)
            if record.change is None:
                # Capture health only (see observability/capture_health.py): never a document.
                metrics.EVENTS.labels(source=record.source, outcome="heartbeat").inc()
                continue
            raw_by_origin[record.message.origin] = record.message
            changes.append(record.change)
        if changes:
            self.freshness.unindexed(changes, self.lane)
            result = await self._write_with_retry(changes)
            await self._settle(result, raw_by_origin)
            self.freshness.indexed({change.source for change in changes}, self.lane)
        else:
            result = WriteResult()
        metrics.BATCH_SECONDS.observe(time.monotonic() - started)
        return result

    async def _write_with_retry(self, changes: list[PartChange]) -> WriteResult:
        # Only a transient failure reaches this policy: _write_isolating turns every other one into
        # failed changes (dead letters), so the batch is retried until Elasticsearch takes it.
        return await retry_transient(
            lambda: self._write_isolating(changes),
            stage="index",
            what=f"batch of {len(changes)} changes",
            max_backoff_s=self.max_backoff_s,
        )

    async def _write_isolating(self, changes: list[PartChange]) -> WriteResult:
        """Write the batch; if the batch as a whole fails for good, find the culprit one change at a time."""
        try:
            return await self.writer.write(changes, self.turn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the one rule (errors.is_transient): transient waits, the rest is isolated
            if is_transient(exc):
                raise
            if len(changes) == 1:
                error = exc if isinstance(exc, StreamsError) else IndexingError(f"{type(exc).__name__}: {exc}")
                return WriteResult(failed=[(changes[0], error)])
            log.warning("batch of %d failed (%s); retrying one change at a time", len(changes), exc)
            merged = WriteResult()
            for change in changes:
                merged.merge(await self._write_isolating([change]))
            return merged

    async def _settle(self, result: WriteResult, raw_by_origin: dict[Origin, RawMessage]) -> None:
        searchable_at = result.searchable_at or datetime.now(UTC)
        for change in result.applied:
            observe_freshness(self.freshness, change, searchable_at, "snapshot" if self.lane == "backfill" else None)
            metrics.EVENTS.labels(source=change.source, outcome="applied").inc()
        for change in result.stale:
            metrics.EVENTS.labels(source=change.source, outcome="stale").inc()
        for change in result.suppressed:
            metrics.EVENTS.labels(source=change.source, outcome="suppressed").inc()
        metrics.CHUNKS_EMBEDDED.inc(result.chunks_embedded)
        metrics.CHUNKS_REUSED.inc(result.chunks_reused)
        metrics.CHUNKS_DELETED.inc(result.chunks_deleted)
        metrics.CHUNKS_WRITTEN.inc(result.chunks_written)
        for change, error in result.failed:
            metrics.EVENTS.labels(source=change.source, outcome="failed").inc()
            raw = raw_by_origin.get(change.origin) if change.origin else None
            if raw is None:
                log.error("failed change without origin: %s: %s", change.document_id, error)
                continue
            await self._dead_letter(raw, error, sorted(change.subjects))

    async def _dead_letter(self, message: RawMessage, error: BaseException, subjects: list[str] | None = None) -> None:
        log.warning("dead letter: %s[%d]@%d: %s", message.topic, message.partition, message.offset, error)
        record = dead_letter_record(message.origin, message.key, message.value, error, subjects)
        await self.send_dead_letter(message.origin, record)
