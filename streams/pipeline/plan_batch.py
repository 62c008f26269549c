"""Plan what one batch of part changes asks of the index: pure, no I/O.

The writer (agents/write_changes.py) runs a batch in four steps, and every decision in them is here:
1. ``plan_batch``: the stored state records + the changes -> one DocumentUpdate per document
   (ordering, suppression, redaction, chunking; update_document_state.py);
2. ``reusable_chunk_ids``: which chunks already in the index hold a text that is written again, so
   their vectors are read back instead of embedded (plan_embeddings.py then says what to embed);
3. ``build_operations``: the bulk actions: chunk writes and deletes first, then each document's
   state record with optimistic concurrency, so a state record never claims unwritten chunks;
4. ``read_bulk_items``: each item's outcome, against the document it belongs to: conflicts (plan the
   document again), transient failures (retry the whole batch), rejections (dead-letter the document).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.errors import IndexingError, Outcome, StreamsError, classify_item
from streams.pipeline.update_document_state import (
    Chunker,
    DocumentState,
    DocumentUpdate,
    IsForgotten,
    Redact,
    apply_changes,
    no_redaction,
)
from streams.records import ChunkText, PartChange, chunk_id

Vector = list[float]


def state_id(document_id: str) -> str:
    return f"state:{document_id}"


@dataclass(frozen=True)
class StoredState:
    """A document's state record as read from the index, with what optimistic concurrency needs."""

    state: DocumentState | None
    seq_no: int | None = None
    primary_term: int | None = None

    @property
    def record_version(self) -> tuple[int, int] | None:
        """(seq_no, primary_term) of the record read, None when there was none."""
        return None if self.seq_no is None or self.primary_term is None else (self.seq_no, self.primary_term)


@dataclass
class BatchPlan:
    updates: dict[str, DocumentUpdate] = field(default_factory=dict)
    failed: list[tuple[PartChange, StreamsError]] = field(default_factory=list)

    def chunks_to_write(self) -> list[ChunkText]:
        return [chunk for u in self.updates.values() for chunks in u.write_parts.values() for chunk in chunks]


def plan_batch(
    stored: Mapping[str, StoredState],
    pending: Mapping[str, list[PartChange]],
    chunker: Chunker,
    is_forgotten: IsForgotten,
    redact: Redact = no_redaction,
) -> BatchPlan:
    """Apply each document's changes (in delivery order) to its stored state."""
    plan = BatchPlan()
    for document_id, changes in pending.items():
        try:
            plan.updates[document_id] = apply_changes(stored[document_id].state, changes, chunker, is_forgotten, redact)
        except StreamsError as exc:
            plan.failed.extend((change, exc) for change in changes)
        except Exception as exc:  # odd data in one document (a chunker bug) must not stop the others
            error = IndexingError(f"{type(exc).__name__}: {exc}", stage="chunk")
            plan.failed.extend((change, error) for change in changes)
    return plan


def reusable_chunk_ids(plan: BatchPlan, stored: Mapping[str, StoredState]) -> list[str]:
    """Ids of indexed chunks whose text is about to be written again (their vectors can be reused)."""
    wanted = {chunk.text_hash for chunk in plan.chunks_to_write()}
    ids: list[str] = []
    for document_id, update in plan.updates.items():
        old = stored[document_id].state
        if old is None:
            continue
        for part_id in update.write_parts:
            part = old.parts.get(part_id)
            if part is not None:
                ids.extend(
                    chunk_id(document_id, part_id, number)
                    for number, text_hash in enumerate(part.chunk_hashes)
                    if text_hash in wanted
                )
    return ids


@dataclass(frozen=True)
class Operation:
    """One bulk action (in elasticsearch-py's helper format) and the document it belongs to."""

    owner: str
    action: dict[str, Any]


def build_operations(
    plan: BatchPlan,
    stored: Mapping[str, StoredState],
    vectors: Mapping[str, Vector],
    now: str,
    provenance: Mapping[str, Any] | None = None,
) -> list[Operation]:
    """Every bulk action of the batch, a document's chunks before its state record. `provenance`
    (generation, model, chunker) goes on every chunk written, so a search hit names what made it."""
    operations: list[Operation] = []
    for document_id, update in plan.updates.items():
        if update.changed:
            operations.extend(
                Operation(document_id, action)
                for action in _document_actions(update, stored[document_id], vectors, now, provenance or {})
            )
    return operations


def _document_actions(
    update: DocumentUpdate,
    stored: StoredState,
    vectors: Mapping[str, Vector],
    now: str,
    provenance: Mapping[str, Any],
) -> list[dict[str, Any]]:
    state = update.state
    actions: list[dict[str, Any]] = []
    for part_id, chunks in update.write_parts.items():
        for chunk in chunks:
            actions.append(
                {
                    "_op_type": "index",
                    "_id": chunk_id(state.document_id, part_id, chunk.number),
                    "_source": {**chunk_source(state, part_id, chunk, vectors[chunk.text_hash], now), **provenance},
                }
            )
    for part_id in update.refresh_parts:
        part = state.parts[part_id]
        partial = {
            **state.doc_fields(),
            "subjects": state.chunk_subjects(),
            "version": part.version,
            "commit_ts": part.commit_ts,
            "indexed_at": now,
        }
        actions.extend(
            {"_op_type": "update", "_id": chunk_id(state.document_id, part_id, number), "doc": partial}
            for number in range(len(part.chunk_hashes))
        )
    actions.extend({"_op_type": "delete", "_id": deleted} for deleted in update.delete_ids)
    state_source = {**state.to_json(), "indexed_at": now}
    state_action: dict[str, Any] = {"_id": state_id(state.document_id), "_source": state_source}
    if stored.seq_no is None:
        state_action["_op_type"] = "create"
    else:
        state_action.update(_op_type="index", if_seq_no=stored.seq_no, if_primary_term=stored.primary_term)
    actions.append(state_action)
    return actions


def chunk_source(state: DocumentState, part_id: str, chunk: ChunkText, vector: Vector, now: str) -> dict[str, Any]:
    part = state.parts[part_id]
    return {
        "kind": "chunk",
        "document_id": state.document_id,
        "part_id": part_id,
        "source": state.source,
        "table": part.table,
        "chunk_number": chunk.number,
        "section": chunk.section,
        "text": chunk.text,
        "text_hash": chunk.text_hash,
        "vector": vector,
        "version": part.version,
        "commit_ts": part.commit_ts,
        "indexed_at": now,
        "subjects": state.chunk_subjects(),
        **state.doc_fields(),
    }


@dataclass
class BulkOutcome:
    conflicts: set[str] = field(default_factory=set)  # documents whose state record changed meanwhile
    rejected: dict[str, StreamsError] = field(default_factory=dict)  # document -> why, for good
    transient: str | None = None  # why the batch must be retried, if it must


def read_bulk_items(operations: Sequence[Operation], items: Sequence[Mapping[str, Any]]) -> BulkOutcome:
    """Classify each bulk item's result (``{action: {status, _id, error}}``, errors.classify_item)
    against its document. Items are matched to operations by `_id`, not by position: the bulk helper
    returns an item it sent again after a 429 after the others (every id belongs to one document)."""
    owners = {str(operation.action.get("_id", "")): operation.owner for operation in operations}
    outcome = BulkOutcome()
    for item in items:
        _action, result = next(iter(item.items()))
        item_id = str(result.get("_id", ""))
        kind = classify_item(item)
        if kind is Outcome.DONE:
            continue  # a chunk already gone is as good as deleted; a missing one needs no field refresh
        if kind is Outcome.CONFLICT and item_id.startswith("state:"):
            outcome.conflicts.add(owners[item_id])
        elif kind is Outcome.TRANSIENT:
            outcome.transient = outcome.transient or f"Elasticsearch answered {result.get('status')} for {item_id}"
        else:
            reason = result.get("error") or {}
            outcome.rejected.setdefault(
                owners[item_id],
                IndexingError(f"{result.get('status', 500)} {reason.get('type')}: {reason.get('reason')}"),
            )
    return outcome
