"""Write a batch of part changes: load state, plan (pure), embed what is new, one bulk write, settle.

The planning is pipeline/plan_batch.py; the index I/O is elastic/document_store.py; the model is
embedding/. This module only runs them in order, with two rules of its own:
- a document whose state record changed under us (optimistic concurrency) is planned again, up to
  MAX_CONFLICT_ROUNDS times; the last round holds the gate for its documents from load to write, so
  that a large batch planned again after each of a stream of deletion requests still ends written;
- the write gate (agents/write_gate.py) is held while the ledger is re-checked and the batch is
  written: if a deletion request arrived while this batch was being embedded, the batch is planned
  again, so no write planned before a request can land after it (see agents/suppression.py). Batches
  hold it side by side, each its own documents alone: a live batch's write does not wait for a
  backfill batch's bulk request unless they share a document;
- there, each document's state record is read again: one the other lane wrote since
  this batch loaded it is planned again instead of written. The state record's own check
  (optimistic concurrency) comes too late for this: the chunks are written before it, and chunks
  planned from the older state would overwrite the newer ones under the same ids;
- a batch of the backfill lane passes a `turn` (agents/lanes.py): it is awaited before each round and
  before each slice is embedded, so that live batches go first. A live batch embeds with a copy of the
  model in a thread of its own (`live`), so it never waits for the backfill slices already queued. A
  backfill batch's texts are embedded longest first, in slices of like length bounded by their padded size
  (`length_sorted_slices`), which cuts padding. Such a batch is cut into two halves with no document in
  common (`split_by_document`), written side by side: the model has one thread, so while one half
  embeds, the other loads its states, plans or waits for its bulk write, and the CPU is not left idle
  during the index's round trips.

Each batch's result says where its wall time went (`WriteResult.phases`, summed over rounds and
halves): loading states, planning, reading reusable vectors, embedding (with the wait for the model's
thread), waiting for the gate, and the bulk write with its refresh. The batch's log line prints them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from streams.agents.lanes import Turn
from streams.agents.suppression import SuppressionLedger
from streams.elastic.document_store import DocumentStore
from streams.embedding.embedder import Embedder
from streams.errors import IndexingError, RetryableError, StreamsError
from streams.observability.phases import Phases
from streams.pipeline import plan_batch as planning
from streams.pipeline.plan_embeddings import plan_embeddings
from streams.pipeline.update_document_state import Chunker
from streams.records import PartChange

log = logging.getLogger(__name__)

MAX_CONFLICT_ROUNDS = 5
BACKFILL_SLICE_TEXTS = 16  # texts embedded between two turns of the backfill lane
BACKFILL_HALVES = 2  # a backfill batch's interleaved halves: one embeds while the other reads or writes
# Where a batch's wall time goes, in the order a round runs them (WriteResult.phases).
STAGES = ("load", "plan", "vectors", "embed", "gate", "bulk")


@dataclass
class WriteResult:
    applied: list[PartChange] = field(default_factory=list)
    stale: list[PartChange] = field(default_factory=list)
    suppressed: list[PartChange] = field(default_factory=list)
    failed: list[tuple[PartChange, StreamsError]] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_written: int = 0
    chunks_deleted: int = 0
    searchable_at: datetime | None = None
    phases: Phases = field(default_factory=Phases)  # wall seconds by stage (STAGES)

    def merge(self, other: WriteResult) -> None:
        self.applied += other.applied
        self.stale += other.stale
        self.suppressed += other.suppressed
        self.failed += other.failed
        self.chunks_embedded += other.chunks_embedded
        self.chunks_reused += other.chunks_reused
        self.chunks_written += other.chunks_written
        self.chunks_deleted += other.chunks_deleted
        if other.searchable_at is not None:
            self.searchable_at = max(other.searchable_at, self.searchable_at or other.searchable_at)
        self.phases.merge(other.phases)


class ChangeWriter:
    def __init__(
        self,
        store: DocumentStore,
        embedder: Embedder,
        chunker: Chunker,
        ledger: SuppressionLedger,
        provenance: dict[str, Any] | None = None,
        slice_texts: int = BACKFILL_SLICE_TEXTS,
        live: Embedder | None = None,
    ) -> None:
        self.store = store
        self.slice_texts = slice_texts
        self.embedder = embedder
        # The live lane's copy of the model, with a thread of its own (agents/runtime.py Embedders.live):
        # a live batch never waits behind the backfill slices queued in the indexing copy's one thread.
        # None: one copy for both lanes.
        self.live = live
        self.chunker = chunker
        self.ledger = ledger
        self.provenance = provenance or {}  # generation, model, chunker: on every chunk written

    async def write(self, changes: list[PartChange], turn: Turn | None = None) -> WriteResult:
        """Apply `changes` (in delivery order) to the index. Raises RetryableError on transient failure.
        With a `turn`, the work yields to the live lane between its steps, and runs as two interleaved
        halves (see the module's text)."""
        if turn is None:
            return await self._write(changes, None)
        halves = split_by_document(changes, BACKFILL_HALVES)
        if len(halves) < 2:
            return await self._write(changes, turn)
        tasks = [asyncio.ensure_future(self._write(half, turn)) for half in halves]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            # One half failed (the caller retries the whole batch) or the worker stops: the other
            # half is stopped too, so that no write of this batch runs on beside its retry.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        result = WriteResult()
        for part in results:
            result.merge(part)
        return result

    async def _write(self, changes: list[PartChange], turn: Turn | None) -> WriteResult:
        result = WriteResult()
        pending: dict[str, list[PartChange]] = {}
        for change in changes:
            pending.setdefault(change.document_id, []).append(change)
        # The vectors this call embedded, by text hash: a round planned again (a deletion request or
        # the other lane came between) embeds only what it did not embed before.
        embedded: dict[str, list[float]] = {}
        for attempt in range(MAX_CONFLICT_ROUNDS):
            if not pending:
                break
            if turn is not None:
                await turn()
            if attempt < MAX_CONFLICT_ROUNDS - 1:
                conflicts = await self._write_round(pending, result, embedded, turn)
            else:
                conflicts = await self._write_held_round(pending, result, embedded, turn)
            pending = {doc: pending[doc] for doc in conflicts}
        for document_changes in pending.values():
            error = IndexingError("the document's state kept changing under concurrent writers")
            result.failed.extend((change, error) for change in document_changes)
        return result

    async def _write_held_round(
        self,
        pending: dict[str, list[PartChange]],
        result: WriteResult,
        embedded: dict[str, list[float]],
        turn: Turn | None,
    ) -> set[str]:
        """The last round, for documents planned again every round so far: deletion requests landing
        one after another while a large batch plans, or the other lane writing the same documents.
        It holds the gate for its documents from loading their state to writing, so that nothing can
        change under it (a deletion request waits for it, as for any batch in flight). It does not
        yield to the live lane meanwhile: a live batch of the same documents waits at the gate, and
        would never end while this round waited for it."""
        asked = time.perf_counter()
        async with self.ledger.gate.batch(pending):
            result.phases.add("gate", time.perf_counter() - asked)
            return await self._write_round(pending, result, embedded, _at_once if turn else None, gate_held=True)

    async def _write_round(
        self,
        pending: dict[str, list[PartChange]],
        result: WriteResult,
        embedded: dict[str, list[float]],
        turn: Turn | None = None,
        gate_held: bool = False,
    ) -> set[str]:
        with result.phases.timed("load"):
            stored = await self.store.load_states(list(pending))
        ledger_version = self.ledger.version
        # Planning chunks and redacts every text with the model's tokenizer: seconds for a large batch, so
        # it runs off the event loop, which must keep serving heartbeats, /health and deletion requests.
        with result.phases.timed("plan"):
            plan = await asyncio.get_running_loop().run_in_executor(
                None,
                partial(planning.plan_batch, stored, pending, self.chunker, self.ledger.names_any, self.ledger.redact),
            )
        result.failed.extend(plan.failed)
        with result.phases.timed("vectors"):
            vectors = await self.store.load_vectors(planning.reusable_chunk_ids(plan, stored))
            missing = [chunk.text_hash for chunk in plan.chunks_to_write() if chunk.text_hash not in vectors]
            vectors.update((digest, embedded[digest]) for digest in missing if digest in embedded)
            missing = [digest for digest in missing if digest not in embedded]
            if missing and self.store.reuse_from:
                vectors.update(await self.store.vectors_by_hash(missing))
        embeddings = plan_embeddings(plan.chunks_to_write(), vectors)
        if embeddings.to_embed:
            with result.phases.timed("embed"):
                chunk_vectors = embeddings.vectors(await self._encode(embeddings.texts, turn))
            fresh = {chunk.text_hash: vector for chunk, vector in zip(embeddings.chunks, chunk_vectors, strict=True)}
            vectors.update(fresh)
            embedded.update(fresh)
        result.chunks_embedded += embeddings.embedded  # the model's work, even if this round is planned again
        result.chunks_reused += embeddings.reused_count
        now = datetime.now(UTC).isoformat()
        operations = planning.build_operations(plan, stored, vectors, now, self.provenance)
        for update in plan.updates.values():
            if not update.changed:
                result.stale.extend(update.stale)
        if not operations:
            return set()
        asked = time.perf_counter()
        async with contextlib.nullcontext() if gate_held else self.ledger.gate.batch(plan.updates):
            result.phases.add("gate", time.perf_counter() - asked)
            if self.ledger.version != ledger_version:
                # A deletion request landed while this batch was embedded: plan it all again.
                return {doc for doc, update in plan.updates.items() if update.changed}
            # The other lane may have written one of these documents since its state was loaded. Its
            # chunks must not be overwritten with what was planned from the older state: such a
            # document is planned again, and the others are written.
            with result.phases.timed("bulk"):
                moved = await self._moved(stored, {operation.owner for operation in operations})
                operations = [operation for operation in operations if operation.owner not in moved]
                items = await self.store.bulk(operations)
        outcome = planning.read_bulk_items(operations, items)
        outcome.conflicts |= moved
        if outcome.transient:
            raise RetryableError(outcome.transient, stage="index")
        result.searchable_at = datetime.now(UTC)
        for document_id, update in plan.updates.items():
            if document_id in outcome.conflicts or not update.changed:
                continue
            if document_id in outcome.rejected:
                result.failed.extend((change, outcome.rejected[document_id]) for change in pending[document_id])
                continue
            result.applied.extend(update.applied)
            result.suppressed.extend(update.suppressed)
            result.stale.extend(update.stale)
            result.chunks_written += sum(len(chunks) for chunks in update.write_parts.values())
            result.chunks_deleted += len(update.delete_ids)
        if outcome.conflicts:
            log.info("state of %d documents changed under this batch; planning them again", len(outcome.conflicts))
        return outcome.conflicts

    async def _moved(self, stored: dict[str, planning.StoredState], documents: set[str]) -> set[str]:
        """The documents whose state record is no longer the one they were planned from."""
        if not documents:
            return set()
        current = await self.store.state_versions(sorted(documents))
        return {document for document in documents if current[document] != stored[document].record_version}

    async def _encode(self, texts: list[str], turn: Turn | None) -> list[list[float]]:
        if turn is None:
            return await (self.live or self.embedder).encode_async(texts)
        vectors: list[list[float] | None] = [None] * len(texts)
        for picked in length_sorted_slices(texts, self.slice_texts):
            await turn()
            for index, vector in zip(picked, await self.embedder.encode_async([texts[i] for i in picked]), strict=True):
                vectors[index] = vector
        return [vector for vector in vectors if vector is not None]


async def _at_once() -> None:
    """A backfill round's turn that never waits for the live lane (see `_write_held_round`)."""


def split_by_document(changes: list[PartChange], parts: int) -> list[list[PartChange]]:
    """`changes` cut into at most `parts` lists with no document in two of them, each in delivery
    order, of about as many changes each (a document's changes stay together, whole)."""
    by_document: dict[str, list[PartChange]] = {}
    for change in changes:
        by_document.setdefault(change.document_id, []).append(change)
    groups: list[list[PartChange]] = [[] for _ in range(min(parts, len(by_document)))]
    for document_changes in sorted(by_document.values(), key=len, reverse=True):
        min(groups, key=len).extend(document_changes)
    order = {id(change): index for index, change in enumerate(changes)}
    return [sorted(group, key=lambda change: order[id(change)]) for group in groups if group]


def length_sorted_slices(texts: list[str], slice_texts: int) -> list[list[int]]:
    """The backfill lane's slices of `texts` (their indexes), longest first, each bounded by its padded size.

    A model pads every text of a call to the call's longest, so texts of like length go together: a
    slice costs about its count times its longest text. Each slice may cost what `slice_texts` of the
    batch's longest texts cost, and holds at most 4 * `slice_texts` texts, so that a live batch still
    waits for about one slice of full-length work and no more. Length is counted in characters, as
    sentence-transformers sorts (a proxy for the tokens: every chunk is already cut to the model's window).
    """
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    if not order:
        return []
    budget = slice_texts * max(len(texts[order[0]]), 1)
    slices: list[list[int]] = []
    current: list[int] = []
    for index in order:
        widest = len(texts[current[0]]) if current else len(texts[index])
        if current and ((len(current) + 1) * max(widest, 1) > budget or len(current) >= 4 * slice_texts):
            slices.append(current)
            current = []
        current.append(index)
    slices.append(current)
    return slices


class Writer(Protocol):
    async def write(self, changes: list[PartChange], turn: Turn | None = None) -> WriteResult: ...


class GenerationsWriter:
    """Writes every batch to each index generation a migration lists (one ChangeWriter per generation,
    each with its generation's model and chunker), the serving generation first.

    The serving generation's result is the batch's result (freshness, dead letters): it is what search
    sees. A change another generation refuses for good is logged, not dead-lettered twice; a transient
    failure anywhere retries the whole batch (every write is idempotent). `writers` is replaced as a
    whole when a migration step changes the set, so a batch uses one set from start to end. The two
    lanes' batches may be in flight at once (agents/lanes.py): `replace` waits for every batch that
    uses the old set.
    """

    def __init__(self, writers: dict[str, ChangeWriter], serving: str) -> None:
        self.writers = writers
        self.serving = serving
        self._in_flight: dict[int, int] = {}  # id of a set of writers -> its batches in flight
        self._settled = asyncio.Condition()

    async def replace(self, writers: dict[str, ChangeWriter], serving: str) -> None:
        """Use another set of generations from the next batch on; returns once no batch writes the old set."""
        old = id(self.writers)
        self.writers, self.serving = writers, serving
        async with self._settled:
            await self._settled.wait_for(lambda: not self._in_flight.get(old))

    async def write(self, changes: list[PartChange], turn: Turn | None = None) -> WriteResult:
        writers, serving = self.writers, self.serving
        key = id(writers)
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        try:
            return await self._write(writers, serving, changes, turn)
        finally:
            self._in_flight[key] -= 1
            if not self._in_flight[key]:
                del self._in_flight[key]
            async with self._settled:
                self._settled.notify_all()

    async def _write(
        self, writers: dict[str, ChangeWriter], serving: str, changes: list[PartChange], turn: Turn | None
    ) -> WriteResult:
        result = await writers[serving].write(changes, turn)
        for index, writer in writers.items():
            if index == serving:
                continue
            other = await writer.write(changes, turn)
            for change, error in other.failed:
                log.error("generation %s refused %s: %s", index, change.document_id, error)
            result.chunks_embedded += other.chunks_embedded
            result.chunks_reused += other.chunks_reused
            result.chunks_written += other.chunks_written
            result.chunks_deleted += other.chunks_deleted
        return result
