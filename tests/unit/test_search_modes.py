"""The one search function behind /search, `streams search` and `streams eval`: its modes, its fusion
knobs, and highlighting only what it returns."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.elastic.hybrid_index import SearchTuning, fuse, search


def hit(chunk: str, document: str) -> dict[str, Any]:
    return {"_id": chunk, "_source": {"document_id": document, "source": "tickets", "text": chunk}}


class FakeElasticsearch:
    """Answers BM25 with chunks a..e (documents A..E) and kNN with e..a; records every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    async def search(self, index: str, **body: Any) -> dict[str, Any]:
        self.requests.append(body)
        if "knn" in body:
            return {"hits": {"hits": [hit(c, c.upper()) for c in "edcba"][: body["size"]]}}
        ids = body["query"]["bool"]["filter"][0].get("ids", {}).get("values")
        if ids is not None:  # the highlight request
            return {"hits": {"hits": [{"_id": i, "highlight": {"text": [f"<em>{i}</em>"]}} for i in ids]}}
        return {"hits": {"hits": [hit(c, c.upper()) for c in "abcde"][: body["size"]]}}


def run_search(**kwargs: Any) -> tuple[list[str], FakeElasticsearch, Any]:
    client = FakeElasticsearch()
    hits = asyncio.run(search(client, "alias", "q", [0.1], **kwargs))  # type: ignore[arg-type]
    return [h.document_id for h in hits], client, hits


def test_bm25_and_knn_alone_are_each_retrievers_own_order() -> None:
    assert run_search(k=3, mode="bm25", highlight=False)[0] == ["A", "B", "C"]
    assert run_search(k=3, mode="knn", highlight=False)[0] == ["E", "D", "C"]
    _, client, _ = run_search(k=3, mode="bm25", highlight=False)
    assert len(client.requests) == 1 and "knn" not in client.requests[0]


def test_a_retriever_weight_moves_the_fused_order() -> None:
    bm25 = [hit(c, c.upper()) for c in "abc"]
    knn = [hit(c, c.upper()) for c in "cba"]
    assert next(d.document_id for d in fuse(bm25, knn, 3, tuning=SearchTuning(bm25_weight=2.0))) == "A"
    assert next(d.document_id for d in fuse(bm25, knn, 3, tuning=SearchTuning(knn_weight=2.0))) == "C"


def test_only_returned_bm25_chunks_are_highlighted() -> None:
    _ids, client, hits = run_search(k=2, mode="hybrid")
    assert len(hits) == 2
    assert all("highlight" not in r for r in client.requests[:2])  # no highlighting of all candidates
    highlighted = client.requests[2]["query"]["bool"]["filter"][0]["ids"]["values"]
    assert sorted(highlighted) == sorted(c.chunk_id for h in hits for c in h.chunks)
    assert hits[0].chunks[0].highlights == [f"<em>{hits[0].chunks[0].chunk_id}</em>"]


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown search mode"):
        run_search(mode="semantic")
