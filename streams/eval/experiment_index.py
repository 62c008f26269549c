"""Scratch indices for measuring a mapping or embedding change before it reaches the live index.

`streams eval copy-index` copies one group's chunks (a loaded golden set) from the live alias into a new
index with the candidate mapping, so `streams eval --index NAME` can compare them on the same chunks.
Copying keeps the vectors unless `--embed-title` re-embeds each chunk as "title / section / text" (the
change the live pipeline would make in a new index generation). The live index is only read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from elasticsearch import Elasticsearch
from elasticsearch.helpers import bulk, scan

from streams.elastic.hybrid_index import chunk_filter, index_body

log = logging.getLogger(__name__)
BATCH = 64


def embedding_text(chunk: dict[str, Any]) -> str:
    """What --embed-title embeds: the document title and section in front of the chunk's text."""
    heading = " / ".join(part for part in (chunk.get("title", ""), chunk.get("section", "")) if part)
    return f"{heading}\n{chunk.get('text', '')}" if heading else str(chunk.get("text", ""))


def copy_group(
    es: Elasticsearch,
    alias: str,
    group: str,
    target: str,
    dims: int,
    analysis: str,
    encode: Callable[[Sequence[str]], Sequence[Sequence[float]]] | None = None,
    progress: Callable[[int], None] = lambda n: None,
) -> int:
    """Create `target` with the candidate mapping and copy the group's chunks into it; the count."""
    if es.indices.exists(index=target):
        es.indices.delete(index=target)
    es.indices.create(index=target, **index_body(dims, "-1", analysis=analysis))
    hits = scan(es, index=alias, query={"query": {"bool": {"filter": chunk_filter(None, [group])}}}, size=500)
    copied = 0

    def actions() -> Iterator[dict[str, Any]]:
        nonlocal copied
        batch: list[dict[str, Any]] = []
        for hit in hits:
            batch.append(hit)
            if len(batch) == BATCH:
                yield from _prepared(batch, target, encode)
                copied += len(batch)
                progress(copied)
                batch = []
        if batch:
            yield from _prepared(batch, target, encode)
            copied += len(batch)
            progress(copied)

    bulk(es, actions(), chunk_size=BATCH, request_timeout=120)
    es.indices.put_settings(index=target, settings={"index": {"refresh_interval": "1s"}})
    es.indices.refresh(index=target)
    return copied


def _prepared(
    hits: list[dict[str, Any]], target: str, encode: Callable[[Sequence[str]], Sequence[Sequence[float]]] | None
) -> Iterator[dict[str, Any]]:
    vectors = encode([embedding_text(h["_source"]) for h in hits]) if encode else None
    for n, hit in enumerate(hits):
        source = dict(hit["_source"])
        if vectors is not None:
            source["vector"] = list(vectors[n])
        yield {"_index": target, "_id": hit["_id"], "_source": source}
