"""Reading and writing the documents' records in the index: state records, old vectors, bulk writes.

Only I/O lives here; what to write is planned in pipeline/plan_batch.py. Every call goes through
elastic/bulk.py, which turns connection trouble and overload into RetryableError (the caller backs off
and retries the whole batch: every write is idempotent) and any other refusal into IndexingError.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from elasticsearch import AsyncElasticsearch

from streams.elastic import bulk
from streams.elastic.bulk import LIMITS, BulkLimits
from streams.errors import Outcome, classify_item
from streams.pipeline.plan_batch import Operation, StoredState, Vector, state_id
from streams.pipeline.update_document_state import DocumentState

T = TypeVar("T")

REUSE_PAGE = 1000  # text hashes per lookup in another generation


class DocumentStore:
    def __init__(
        self,
        client: AsyncElasticsearch,
        index: str,
        refresh: str = "true",
        reuse_from: str | None = None,
        limits: BulkLimits = LIMITS,
    ) -> None:
        self.client = client
        self.index = index
        self.refresh = refresh
        self.limits = limits
        # Another generation made by the same model (a migration that changes only the chunking): a
        # text it already holds keeps its vector here instead of going to the model again.
        self.reuse_from = reuse_from

    async def load_states(self, document_ids: Sequence[str]) -> dict[str, StoredState]:
        """Each document's state record, by real-time GET (no refresh needed)."""
        response = await _call(self.client.mget(index=self.index, ids=[state_id(d) for d in document_ids]))
        stored: dict[str, StoredState] = {}
        for document_id, doc in zip(document_ids, response["docs"], strict=True):
            if doc.get("found"):
                state = DocumentState.from_json(doc["_source"])
                stored[document_id] = StoredState(state, doc["_seq_no"], doc["_primary_term"])
            else:
                stored[document_id] = StoredState(None)
        return stored

    async def state_versions(self, document_ids: Sequence[str]) -> dict[str, tuple[int, int] | None]:
        """Each document's state record as (seq_no, primary_term), None where it has none: what the
        writer compares, under its gate, with the records it planned from."""
        response = await _call(
            self.client.mget(index=self.index, ids=[state_id(d) for d in document_ids], source=False)
        )
        return {
            document_id: (doc["_seq_no"], doc["_primary_term"]) if doc.get("found") else None
            for document_id, doc in zip(document_ids, response["docs"], strict=True)
        }

    async def load_vectors(self, chunk_ids: Sequence[str]) -> dict[str, Vector]:
        """text hash -> vector of the given chunks (those still in the index)."""
        if not chunk_ids:
            return {}
        response = await _call(
            self.client.mget(index=self.index, ids=list(chunk_ids), source_includes=["text_hash", "vector"])
        )
        vectors: dict[str, Vector] = {}
        for doc in response["docs"]:
            source = doc.get("_source") if doc.get("found") else None
            if source and source.get("vector"):
                vectors[source["text_hash"]] = source["vector"]
        return vectors

    async def vectors_by_hash(self, text_hashes: Sequence[str]) -> dict[str, Vector]:
        """text hash -> vector of chunks with those texts in `reuse_from` ({} without one)."""
        if not self.reuse_from or not text_hashes:
            return {}
        vectors: dict[str, Vector] = {}
        wanted = sorted(set(text_hashes))
        for start in range(0, len(wanted), REUSE_PAGE):
            page = wanted[start : start + REUSE_PAGE]
            response = await _call(
                self.client.search(
                    index=self.reuse_from,
                    size=len(page),
                    source_includes=["text_hash", "vector"],
                    query={"bool": {"filter": [{"term": {"kind": "chunk"}}, {"terms": {"text_hash": page}}]}},
                    collapse={"field": "text_hash"},
                )
            )
            for hit in response["hits"]["hits"]:
                source = hit.get("_source") or {}
                if source.get("vector"):
                    vectors[source["text_hash"]] = source["vector"]
        return vectors

    async def bulk(self, operations: Sequence[Operation]) -> list[Mapping[str, Any]]:
        """Send the operations, bounded (elastic/bulk.py); one result item (``{action: {...}}``) per
        operation sent, read by `_id` (plan_batch.read_bulk_items).

        In two steps: every chunk write and delete first, then the state record of each document
        whose chunk items all landed. A state record claims its chunks: written beside a chunk that
        was refused (a 429 that outlasted the helper's retries, say), the retried batch would find
        the new state, take the change for applied and never write the chunk. Held back instead, the
        document's old state stays, and the retry applies the change again."""
        chunks = [operation for operation in operations if not _is_state(operation)]
        states = [operation for operation in operations if _is_state(operation)]
        # One refresh, the state records', makes both steps searchable (the index has one shard, and a
        # refresh shows every write acknowledged before it): the chunks go without one of their own.
        items = await self._send(chunks, "false" if states else self.refresh)
        owners = {str(operation.action.get("_id", "")): operation.owner for operation in chunks}
        unsettled = {
            owners[str(next(iter(item.values())).get("_id", ""))]
            for item in items
            if classify_item(item) is not Outcome.DONE
        }
        return items + await self._send([state for state in states if state.owner not in unsettled], self.refresh)

    async def _send(self, operations: Sequence[Operation], refresh: str) -> list[Mapping[str, Any]]:
        if not operations:
            return []
        actions = [{"_index": self.index, **operation.action} for operation in operations]
        return list(await bulk.bulk(self.client, actions, stage="index", limits=self.limits, refresh=refresh))


def _is_state(operation: Operation) -> bool:
    return str(operation.action.get("_id", "")) == state_id(operation.owner)


async def _call(awaitable: Awaitable[T]) -> T:
    return await bulk.call(awaitable, stage="index")


__all__ = ["DocumentStore"]
