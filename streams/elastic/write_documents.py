"""Write a batch of part changes to the index: state in, diff out, one bulk request, every item checked.

The sequence for a batch:
1. read the state record of every document the batch touches (a real-time GET: no refresh needed);
2. apply the changes (pipeline/update_document_state.py) to get the chunks to write and delete;
3. reuse the vectors of chunks whose text did not change (read from the old chunks), embed the rest;
4. one bulk request: chunk writes and deletes first, then the state record with optimistic
   concurrency (`if_seq_no`), so a state record never claims chunks that were not written;
5. check every item. Transient failures raise RetryableError (the caller backs off and retries the
   whole batch: everything here is idempotent); a document whose items Elasticsearch rejects for
   good is returned as failed, for the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, ConnectionError, ConnectionTimeout, TransportError

from streams.embedding.embedder import Embedder
from streams.errors import IndexingError, RetryableError, StreamsError
from streams.pipeline.plan_embeddings import plan_embeddings
from streams.pipeline.update_document_state import Chunker, DocumentState, DocumentUpdate, apply_changes
from streams.records import ChunkText, PartChange, chunk_id

log = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
MAX_CONFLICT_ROUNDS = 5


def state_id(document_id: str) -> str:
    return f"state:{document_id}"


@dataclass
class WriteResult:
    applied: list[PartChange] = field(default_factory=list)
    stale: list[PartChange] = field(default_factory=list)
    suppressed: list[PartChange] = field(default_factory=list)
    failed: list[tuple[PartChange, StreamsError]] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deleted: int = 0
    searchable_at: datetime | None = None


@dataclass
class _Loaded:
    state: DocumentState | None
    seq_no: int | None = None
    primary_term: int | None = None


class DocumentWriter:
    def __init__(
        self,
        client: AsyncElasticsearch,
        index: str,
        embedder: Embedder,
        chunker: Chunker,
        is_forgotten: Callable[[Iterable[str]], bool],
        gate: asyncio.Lock | None = None,
        refresh: str = "wait_for",
    ) -> None:
        self.client = client
        self.index = index
        self.embedder = embedder
        self.chunker = chunker
        self.is_forgotten = is_forgotten
        self.refresh = refresh
        # Held while re-checking the suppression ledger and writing, so a deletion request that
        # passes the gate knows no batch planned before it can still land (see agents/suppression.py).
        self.gate = gate or asyncio.Lock()

    async def write(self, changes: list[PartChange]) -> WriteResult:
        """Apply `changes` (in delivery order) to the index. Raises RetryableError on transient failure."""
        result = WriteResult()
        pending: dict[str, list[PartChange]] = {}
        for change in changes:
            pending.setdefault(change.document_id, []).append(change)
        for _ in range(MAX_CONFLICT_ROUNDS):
            if not pending:
                break
            conflicts = await self._write_round(pending, result)
            pending = {doc: pending[doc] for doc in conflicts}
        for document_changes in pending.values():
            error = IndexingError("the document's state kept changing under concurrent writers")
            result.failed.extend((change, error) for change in document_changes)
        return result

    async def _write_round(self, pending: dict[str, list[PartChange]], result: WriteResult) -> set[str]:
        loaded = await self._load_states(list(pending))
        updates: dict[str, DocumentUpdate] = {}
        for document_id, document_changes in pending.items():
            try:
                updates[document_id] = apply_changes(
                    loaded[document_id].state, document_changes, self.chunker, self.is_forgotten
                )
            except StreamsError as exc:
                result.failed.extend((change, exc) for change in document_changes)
            except Exception as exc:  # a bug or odd data in one document must not stop the others
                error = IndexingError(f"{type(exc).__name__}: {exc}", stage="chunk")
                result.failed.extend((change, error) for change in document_changes)
        vectors = await self._vectors_for(updates, loaded, result)
        operations: list[dict[str, Any]] = []
        owners: list[str] = []  # the document each bulk item belongs to
        now = datetime.now(UTC).isoformat()
        for document_id, update in updates.items():
            if not update.changed:
                result.stale.extend(update.stale)
                continue
            for item in self._document_operations(update, loaded[document_id], vectors, now):
                operations.append(item)
                if _is_action(item):
                    owners.append(document_id)
        if not operations:
            return set()
        async with self.gate:
            newly_forgotten = {
                doc for doc, update in updates.items() if update.changed and self.is_forgotten(update.state.subjects)
            }
            if newly_forgotten:
                # A deletion request arrived while this batch was being embedded: plan it all again.
                return set(pending)
            response = await self._bulk(operations)
        failed_docs: dict[str, StreamsError] = {}
        conflicts: set[str] = set()
        for owner, item in zip(owners, response["items"], strict=True):
            action, outcome = next(iter(item.items()))
            status = outcome.get("status", 500)
            if status < 300 or (action == "delete" and status == 404):
                continue
            if action == "update" and status == 404:
                log.warning("chunk %s was missing while refreshing its document fields", outcome.get("_id"))
                continue
            if status == 409 and outcome.get("_id", "").startswith("state:"):
                conflicts.add(owner)
                continue
            if status in RETRYABLE_STATUS:
                raise RetryableError(f"Elasticsearch answered {status} for {outcome.get('_id')}", stage="index")
            reason = outcome.get("error", {})
            failed_docs.setdefault(owner, IndexingError(f"{status} {reason.get('type')}: {reason.get('reason')}"))
        searchable_at = datetime.now(UTC)
        result.searchable_at = searchable_at
        for document_id, update in updates.items():
            if document_id in conflicts or not update.changed:
                continue
            if document_id in failed_docs:
                result.failed.extend((change, failed_docs[document_id]) for change in pending[document_id])
                continue
            result.applied.extend(update.applied)
            result.suppressed.extend(update.suppressed)
            result.stale.extend(update.stale)
            result.chunks_deleted += len(update.delete_ids)
        return conflicts

    async def _load_states(self, document_ids: list[str]) -> dict[str, _Loaded]:
        response = await self._call(self.client.mget, index=self.index, ids=[state_id(d) for d in document_ids])
        loaded: dict[str, _Loaded] = {}
        for document_id, doc in zip(document_ids, response["docs"], strict=True):
            if doc.get("found"):
                loaded[document_id] = _Loaded(
                    DocumentState.from_json(doc["_source"]), doc["_seq_no"], doc["_primary_term"]
                )
            else:
                loaded[document_id] = _Loaded(None)
        return loaded

    async def _vectors_for(
        self, updates: dict[str, DocumentUpdate], loaded: dict[str, _Loaded], result: WriteResult
    ) -> dict[str, list[float]]:
        """text hash -> vector for every chunk about to be written: reused where the text is unchanged."""
        wanted = {chunk.text_hash: chunk for u in updates.values() for cs in u.write_parts.values() for chunk in cs}
        if not wanted:
            return {}
        old_ids: list[str] = []
        for document_id, update in updates.items():
            old = loaded[document_id].state
            if old is None:
                continue
            for part_id in update.write_parts:
                part = old.parts.get(part_id)
                if part is None:
                    continue
                old_ids.extend(
                    chunk_id(document_id, part_id, number)
                    for number, text_hash in enumerate(part.chunk_hashes)
                    if text_hash in wanted
                )
        vectors: dict[str, list[float]] = {}
        if old_ids:
            response = await self._call(
                self.client.mget, index=self.index, ids=old_ids, source_includes=["text_hash", "vector"]
            )
            for doc in response["docs"]:
                source = doc.get("_source") if doc.get("found") else None
                if source and source.get("vector"):
                    vectors[source["text_hash"]] = source["vector"]
        new_chunks = [chunk for u in updates.values() for cs in u.write_parts.values() for chunk in cs]
        plan = plan_embeddings(new_chunks, vectors)
        if plan.to_embed:
            embedded = await self.embedder.encode_async(plan.texts)
            vectors.update((chunk.text_hash, vector) for chunk, vector in zip(plan.to_embed, embedded, strict=True))
        result.chunks_embedded += plan.embedded
        result.chunks_reused += plan.reused_count
        return vectors

    def _document_operations(
        self, update: DocumentUpdate, loaded: _Loaded, vectors: dict[str, list[float]], now: str
    ) -> list[dict[str, Any]]:
        state = update.state
        doc_fields = state.doc_fields()
        operations: list[dict[str, Any]] = []
        for part_id, chunks in update.write_parts.items():
            part = state.parts[part_id]
            for chunk in chunks:
                operations.append({"index": {"_id": chunk_id(state.document_id, part_id, chunk.number)}})
                operations.append(self._chunk_source(state, part_id, chunk, vectors[chunk.text_hash], now))
        for part_id in update.refresh_parts:
            part = state.parts[part_id]
            partial = {
                **doc_fields,
                "subjects": state.chunk_subjects(part_id),
                "version": part.version,
                "commit_ts": part.commit_ts,
                "indexed_at": now,
            }
            for number in range(len(part.chunk_hashes)):
                operations.append({"update": {"_id": chunk_id(state.document_id, part_id, number)}})
                operations.append({"doc": partial})
        for deleted in update.delete_ids:
            operations.append({"delete": {"_id": deleted}})
        state_action: dict[str, Any] = {"_id": state_id(state.document_id)}
        if loaded.seq_no is None:
            operations.append({"create": state_action})
        else:
            state_action.update(if_seq_no=loaded.seq_no, if_primary_term=loaded.primary_term)
            operations.append({"index": state_action})
        operations.append({**state.to_json(), "indexed_at": now})
        return operations

    def _chunk_source(
        self, state: DocumentState, part_id: str, chunk: ChunkText, vector: list[float], now: str
    ) -> dict[str, Any]:
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
            "subjects": state.chunk_subjects(part_id),
            **state.doc_fields(),
        }

    async def _bulk(self, operations: list[dict[str, Any]]) -> Any:
        response = await self._call(self.client.bulk, index=self.index, operations=operations, refresh=self.refresh)
        return response

    async def _call(self, method: Any, **kwargs: Any) -> Any:
        """Call the client; connection trouble and overload become RetryableError."""
        try:
            return await method(**kwargs)
        except (ConnectionError, ConnectionTimeout) as exc:
            raise RetryableError(f"Elasticsearch unreachable: {exc}", stage="index") from exc
        except ApiError as exc:
            if exc.meta.status in RETRYABLE_STATUS:
                raise RetryableError(f"Elasticsearch answered {exc.meta.status}: {exc}", stage="index") from exc
            raise IndexingError(f"Elasticsearch rejected the request: {exc}") from exc
        except TransportError as exc:
            raise RetryableError(f"Elasticsearch transport error: {exc}", stage="index") from exc


def _is_action(item: dict[str, Any]) -> bool:
    return len(item) == 1 and next(iter(item)) in {"index", "create", "update", "delete"}
