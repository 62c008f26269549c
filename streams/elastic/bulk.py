"""The one way both lanes write to Elasticsearch in bulk, and the one way a client call's failure is read.

`bulk` is elasticsearch-py's `async_streaming_bulk`, bounded (a redaction rewrites up to a thousand
chunks with their vectors, a batch of changes thousands: about 8 KB of JSON per chunk), with items
refused with 429 (the write pool is full: a backlog is being indexed) sent again after a backoff by
the helper itself. Nothing is raised for an item: every item comes back, and its owner reads it with
`errors.classify_item`. An item still refused after the helper's retries is transient all the same:
the caller's `retry_transient` waits it out, for as long as the overload lasts.

A retried item lands after the items that followed it in its request, so the results are not in
the order of the actions: read them by `_id`, never by position.

`call` awaits any other client call and turns its failure into the project's errors by the same
rule (`errors.classify`): RetryableError for what waiting fixes, IndexingError for the rest.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from elasticsearch import ApiError, AsyncElasticsearch, TransportError
from elasticsearch.helpers import async_streaming_bulk

from streams.errors import IndexingError, Outcome, RetryableError, classify

T = TypeVar("T")


@dataclass(frozen=True)
class BulkLimits:
    """Bounds of one bulk request, and how the helper retries a 429."""

    max_actions: int = 2000
    max_bytes: int = 16 * 1024 * 1024
    retries: int = 3  # then the item comes back as a 429 and the caller's retry takes over
    backoff_s: float = 0.5  # doubled at each retry of the same request
    max_backoff_s: float = 10.0


LIMITS = BulkLimits()


async def bulk(
    client: AsyncElasticsearch,
    actions: Iterable[Mapping[str, Any]],
    *,
    stage: str,
    limits: BulkLimits = LIMITS,
    **params: Any,
) -> list[dict[str, Any]]:
    """Send `actions` (the helper's format: ``{"_op_type": ..., "_index": ..., "_id": ..., ...}``);
    one result item (``{action: {...}}``) per action, in no particular order. `params` go to every
    bulk request (``refresh``)."""
    items: list[dict[str, Any]] = []

    async def send() -> None:
        stream = async_streaming_bulk(
            client,
            actions,  # type: ignore[arg-type]  # a Mapping is what the helper reads
            chunk_size=limits.max_actions,
            max_chunk_bytes=limits.max_bytes,
            max_retries=limits.retries,
            initial_backoff=limits.backoff_s,
            max_backoff=limits.max_backoff_s,
            retry_on_status=(429,),
            raise_on_error=False,  # every item is read by its owner (errors.classify_item)
            **params,
        )
        async for _ok, item in stream:
            items.append(item)

    await call(send(), stage=stage)
    return items


async def call(awaitable: Awaitable[T], *, stage: str) -> T:
    """Await a client call; an Elasticsearch failure becomes RetryableError or IndexingError by the
    one rule (errors.classify). Anything else (a bug, a cancellation) goes up as it is."""
    try:
        return await awaitable
    except (ApiError, TransportError) as exc:
        if classify(exc) is Outcome.TRANSIENT:
            raise RetryableError(f"Elasticsearch unavailable: {exc}", stage=stage) from exc
        raise IndexingError(f"Elasticsearch rejected the request: {exc}", stage=stage) from exc


__all__ = ["LIMITS", "BulkLimits", "bulk", "call"]
