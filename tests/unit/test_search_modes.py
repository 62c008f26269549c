"""The one search function behind /search, `streams search` and `streams eval`: its modes, its fusion
knobs, and highlighting only what it returns."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.elastic.hybrid_index import SearchTuning, fuse, search_page


def hit(chunk: str, document: str) -> dict[str, Any]:
    """A retriever's hit: the chunk's id and its document, nothing else."""
    return {"_id": chunk, "fields": {"document_id": [document]}}


class FakeElasticsearch:
    """Answers BM25 with chunks a..e (documents A..E) and kNN with e..a; records every request."""

    def __init__(self, gone: str = "") -> None:
        self.requests: list[dict[str, Any]] = []
        self.gone = gone  # chunks forgotten between the retrievers and the details request

    async def search(self, index: str, **body: Any) -> dict[str, Any]:
        self.requests.append(body)
        if "knn" in body:
            return {"hits": {"hits": [hit(c, c.upper()) for c in "edcba"][: body["size"]]}}
        ids = body["query"]["bool"]["filter"][0].get("ids", {}).get("values")
        if ids is not None:  # the details request
            return {
                "hits": {
                    "hits": [
                        {
                            "_id": i,
                            "_source": {"document_id": i.upper(), "source": "tickets", "title": f"T{i}", "text": i},
                            "highlight": {"text": [f"<em>{i}</em>"]},
                        }
                        for i in ids
                        if i not in self.gone
                    ]
                }
            }
        return {"hits": {"hits": [hit(c, c.upper()) for c in "abcde"][: body["size"]]}}


def run_search(gone: str = "", **kwargs: Any) -> tuple[list[str], FakeElasticsearch, Any]:
    client = FakeElasticsearch(gone)
    hits = asyncio.run(search_page(client, "alias", "q", [0.1], **kwargs)).hits  # type: ignore[arg-type]
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


def test_only_returned_chunks_are_read_and_highlighted() -> None:
    _ids, client, hits = run_search(k=2, mode="hybrid", groups=["support"])
    assert len(hits) == 2
    retrievers, details = client.requests[:2], client.requests[2]
    assert all("highlight" not in r and r["_source"] is False for r in retrievers)  # ids and documents only
    assert sorted(details["query"]["bool"]["filter"][0]["ids"]["values"]) == sorted(
        c.chunk_id for h in hits for c in h.chunks
    )
    assert {"terms": {"groups": ["support"]}} in details["query"]["bool"]["filter"]  # the caller's filter again
    first = hits[0].chunks[0]
    assert first.highlights == [f"<em>{first.chunk_id}</em>"] and first.text == first.chunk_id
    assert hits[0].title == f"T{first.chunk_id}" and hits[0].source == "tickets"


def test_a_chunk_gone_before_its_details_were_read_is_not_returned() -> None:
    documents, _, hits = run_search(gone="a", k=3, mode="bm25")
    assert documents == ["B", "C"]
    assert all(chunk.text for h in hits for chunk in h.chunks)


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown search mode"):
        run_search(mode="semantic")
