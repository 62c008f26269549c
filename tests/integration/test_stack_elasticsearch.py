"""The local Elasticsearch serves what the index needs: a dense_vector field (384 dims, cosine,
HNSW), BM25 match queries and kNN queries."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from streams.clients import elasticsearch_client
from streams.settings import Settings

pytestmark = pytest.mark.integration

DIMS = 384


def _unit_vector(seed: int) -> list[float]:
    raw = [math.sin(seed * 7.0 + i * 0.37) + (1.5 if i % (seed + 2) == 0 else 0.0) for i in range(DIMS)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


@pytest.fixture
def index(local_stack: Settings) -> Iterator[tuple[Elasticsearch, str]]:
    client = elasticsearch_client(local_stack)
    name = f"streams-stack-test-{uuid.uuid4().hex[:8]}"
    client.indices.create(
        index=name,
        mappings={
            "properties": {
                "text": {"type": "text"},
                "embedding": {
                    "type": "dense_vector",
                    "dims": DIMS,
                    "index": True,
                    "similarity": "cosine",
                    "index_options": {"type": "hnsw", "m": 16, "ef_construction": 100},
                },
            }
        },
        settings={"number_of_shards": 1, "number_of_replicas": 0},
    )
    try:
        yield client, name
    finally:
        client.indices.delete(index=name, ignore_unavailable=True)
        client.close()


def test_dense_vector_mapping_bm25_and_knn(index: tuple[Elasticsearch, str]) -> None:
    client, name = index
    texts = ["the printer is on fire", "reset a forgotten password", "quarterly revenue by region"]
    for i, text in enumerate(texts):
        client.index(index=name, id=str(i), document={"text": text, "embedding": _unit_vector(i)})
    client.indices.refresh(index=name)

    mapping = client.indices.get_mapping(index=name)[name]["mappings"]["properties"]["embedding"]
    assert mapping["dims"] == DIMS and mapping["similarity"] == "cosine"
    assert mapping["index_options"]["type"] == "hnsw"

    bm25 = client.search(index=name, query={"match": {"text": "forgotten password"}})
    assert bm25["hits"]["hits"][0]["_id"] == "1"

    knn = client.search(
        index=name, knn={"field": "embedding", "query_vector": _unit_vector(2), "k": 2, "num_candidates": 10}
    )
    hits = knn["hits"]["hits"]
    assert hits[0]["_id"] == "2"
    assert hits[0]["_score"] == pytest.approx(1.0, abs=1e-3)  # cosine score (1 + cos) / 2 for the same vector
