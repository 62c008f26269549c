"""Reading and writing the documents' records in the index: state records, old vectors, bulk writes.

Only I/O lives here; what to write is planned in pipeline/plan_batch.py. Every call turns connection
trouble and overload into RetryableError (the caller backs off and retries the whole batch: every
write is idempotent) and any other refusal into IndexingError.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from elasticsearch import ApiError, AsyncElasticsearch, ConnectionError, ConnectionTimeout, TransportError
from elasticsearch.helpers import async_streaming_bulk

from streams.errors import RETRYABLE_STATUS, IndexingError, RetryableError
from streams.pipeline.plan_batch import Operation, StoredState, Vector, state_id
from streams.pipeline.update_document_state import DocumentState

T = TypeVar("T")

# A batch of 256 events can plan thousands of chunks (384 floats each, about 8 KB as JSON): bound each
# bulk request. Requests go one after another, so a document's chunks still land before its state record.
BULK_MAX_ACTIONS = 2000
BULK_MAX_BYTES = 16 * 1024 * 1024
REUSE_PAGE = 1000  # text hashes per lookup in another generation


class DocumentStore:
    def __init__(
        self, client: AsyncElasticsearch, index: str, refresh: str = "true", reuse_from: str | None = None
    ) -> None:
        self.client = client
        self.index = index
        self.refresh = refresh
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
        """Send the operations in order; one result item (``{action: {...}}``) per operation."""
        items: list[Mapping[str, Any]] = []

        async def send() -> None:
            stream = async_streaming_bulk(
                self.client,
                [{"_index": self.index, **operation.action} for operation in operations],
                chunk_size=BULK_MAX_ACTIONS,
                max_chunk_bytes=BULK_MAX_BYTES,
                raise_on_error=False,  # every item is classified by its owner (plan_batch.read_bulk_items)
                refresh=self.refresh,
            )
            async for _ok, item in stream:
                items.append(item)

        await _call(send())
        return items


async def _call(awaitable: Awaitable[T]) -> T:
    """Await a client call; connection trouble and overload become RetryableError."""
    try:
        return await awaitable
    except (ConnectionError, ConnectionTimeout) as exc:
        raise RetryableError(f"Elasticsearch unreachable: {exc}", stage="index") from exc
    except ApiError as exc:
        if exc.meta.status in RETRYABLE_STATUS:
            raise RetryableError(f"Elasticsearch answered {exc.meta.status}: {exc}", stage="index") from exc
        raise IndexingError(f"Elasticsearch rejected the request: {exc}") from exc
    except TransportError as exc:
        raise RetryableError(f"Elasticsearch transport error: {exc}", stage="index") from exc


__all__ = ["DocumentStore"]
