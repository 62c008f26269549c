"""Provenance: every chunk written names the generation, model and chunker that made it, the index
mapping has those fields (added to an older index by put_mapping), and every search hit carries them
with the concrete index that served it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.elastic.generations import generation_of
from streams.elastic.hybrid_index import PROVENANCE_FIELDS, index_body, search_page
from streams.errors import IndexingError
from streams.pipeline.chunk_document import chunker_version
from streams.pipeline.plan_batch import StoredState, build_operations, plan_batch
from tests.unit.test_plan_batch import NOW, PAGE, TEXT, chunker, nobody, page, revision

MADE_BY = {"generation": 2, "model": "all-MiniLM-L6-v2", "chunker": chunker_version(254, 32)}


def test_every_chunk_written_carries_its_provenance_and_the_state_record_does_not() -> None:
    stored = {PAGE: StoredState(None)}
    plan = plan_batch(stored, {PAGE: [page(1), revision(2, 10, TEXT, "a@example.com")]}, chunker, nobody)
    vectors = {chunk.text_hash: [0.1, 0.2] for chunk in plan.chunks_to_write()}
    operations = build_operations(plan, stored, vectors, NOW, MADE_BY)
    chunks = [op.action["_source"] for op in operations if op.action["_source"].get("kind") == "chunk"]
    assert len(chunks) == 20
    assert all({key: chunk[key] for key in MADE_BY} == MADE_BY for chunk in chunks)
    [state] = [op.action["_source"] for op in operations if op.action["_source"].get("kind") == "state"]
    assert not set(MADE_BY) & set(state)  # the strict mapping would take them, but they describe chunks


def test_the_mapping_declares_the_provenance_fields() -> None:
    properties = index_body(384)["mappings"]["properties"]
    assert {name: properties[name] for name in PROVENANCE_FIELDS} == PROVENANCE_FIELDS
    assert chunker_version(254, 32) == "sections-3/max254/overlap32"


def test_generation_comes_from_the_concrete_index_name() -> None:
    assert generation_of("streams-chunks-v1") == 1
    assert generation_of("streams-chunks-v12") == 12
    with pytest.raises(IndexingError):
        generation_of("streams-chunks")


def _retrieved(chunk_id: str, index: str) -> dict[str, Any]:
    return {"_id": chunk_id, "_index": index, "fields": {"document_id": ["d1"]}}


class _TwoGenerations:
    """BM25 finds a chunk written with provenance in v2, kNN one written before provenance in v1; the
    details request (after fusion) returns what each stored."""

    async def search(self, index: str, **body: Any) -> dict[str, Any]:
        if "knn" in body:
            return {"hits": {"hits": [_retrieved("d1#root#1", "streams-chunks-v1")]}}
        ids = body["query"]["bool"]["filter"][0].get("ids", {}).get("values")
        if ids is None:
            return {"hits": {"hits": [_retrieved("d1#root#0", "streams-chunks-v2")]}}
        stored = {"document_id": "d1", "source": "wiki", "text": "t", "section": ""}
        return {
            "hits": {
                "hits": [
                    {"_id": "d1#root#0", "_index": "streams-chunks-v2", "_source": {**stored, **MADE_BY}},
                    {"_id": "d1#root#1", "_index": "streams-chunks-v1", "_source": stored},
                ]
            }
        }


def test_search_hits_name_the_index_and_what_made_the_chunk() -> None:
    [document] = asyncio.run(search_page(_TwoGenerations(), "streams-chunks", "q", [0.1], 5)).hits  # type: ignore[arg-type]
    first, second = document.to_json()["chunks"]
    assert first["provenance"] == {"index": "streams-chunks-v2", **MADE_BY}
    # a chunk written before provenance existed says so, instead of pretending
    assert second["provenance"] == {"index": "streams-chunks-v1", "generation": None, "model": None, "chunker": None}
