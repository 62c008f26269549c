"""The search bench: how many query vectors the server took from its cache, and the direct cell beside
each /search cell (the same requests straight to Elasticsearch, the ratio, the split of one search)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from streams.agents import web
from streams.bench.search_latency import (
    SPLIT_PARTS,
    TimedRequest,
    cached_query_vectors,
    direct_search,
    latency_ratios,
    mean_split,
    request_kind,
    split_of,
)
from streams.bench.stats import summary
from streams.elastic.hybrid_index import search_page
from tests.unit.test_search_auth import OPERATOR_KEY, SCHEMA, _authenticator


def test_cached_and_encoded_query_vectors_are_read_from_metrics_text() -> None:
    registry = CollectorRegistry()
    counter = Counter("streams_query_vectors_total", "query vectors", ["outcome"], registry=registry)
    counter.labels(outcome="cached").inc(7)
    counter.labels(outcome="encoded").inc(3)

    assert cached_query_vectors(generate_latest(registry).decode()) == (7.0, 3.0)


def test_a_server_without_the_counter_reads_as_nothing_cached() -> None:
    assert cached_query_vectors("# HELP other x\n# TYPE other counter\nother_total 5.0\n") == (0.0, 0.0)


# -- the direct cell --------------------------------------------------------------------------------


def test_the_ratio_is_search_over_direct_and_none_when_the_direct_cell_answered_nothing() -> None:
    search_ms = summary([100.0, 200.0, 300.0, 400.0])
    assert latency_ratios(search_ms, summary([50.0, 100.0, 150.0, 200.0])) == {"ratio_p50": 2.0, "ratio_p95": 2.0}
    assert latency_ratios(search_ms, summary([])) == {"ratio_p50": None, "ratio_p95": None}


class _RecordingElasticsearch:
    """Answers every search with one chunk (and a total), and records what was asked."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def search(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        hit = {"_id": "c1", "_index": "streams-chunks-v1", "fields": {"document_id": ["d1"]}, "_source": {}}
        return {"hits": {"hits": [hit]}, "aggregations": {"documents": {"value": 1}}}


class _FakeWeb:
    def json(self, value: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        return SimpleNamespace(body=value, status=status, headers=headers or {})


async def _search_bodies(query: str, vector: list[float], k: int) -> list[dict[str, Any]]:
    """What /search sends to Elasticsearch for the bench's key (an operator's), its search_page included."""
    es = _RecordingElasticsearch()

    async def encode(text: str) -> list[float]:
        return vector

    async def runtime() -> Any:
        return SimpleNamespace(
            search_target=lambda: ("streams-chunks-v1", SimpleNamespace(encode_query_async=encode)), es=es
        )

    request = SimpleNamespace(
        method="GET", query={"q": query, "k": str(k)}, headers={"Authorization": f"Bearer {OPERATOR_KEY}"}
    )
    answer = await web.answer_search(_FakeWeb(), request, _authenticator(), runtime, search_page, SCHEMA)
    assert answer.status == 200, answer.body
    return es.calls


@pytest.mark.parametrize("k", [10, 100])
async def test_the_direct_client_sends_the_requests_search_sends(k: int) -> None:
    vector = [0.25, -0.5, 0.75]
    es = _RecordingElasticsearch()

    split = await direct_search(es, "streams-chunks-v1", "autovacuum", vector, k)  # type: ignore[arg-type]

    assert es.calls == await _search_bodies("autovacuum", vector, k)
    assert [request_kind(call) for call in es.calls] == ["bm25", "knn", "details"]
    assert set(split) == set(SPLIT_PARTS) and all(ms >= 0 for ms in split.values())


def test_one_search_splits_into_retrievers_fusion_details_and_the_rest() -> None:
    requests = [
        TimedRequest("bm25", 1.000, 1.030),
        TimedRequest("knn", 1.001, 1.040),  # side by side: the retrievers take the slower one's time
        TimedRequest("details", 1.045, 1.060),
    ]
    assert split_of(requests, 0.998, 1.062) == {"retrievers": 40.0, "fusion": 5.0, "details": 15.0, "other": 4.0}
    # Nothing to fetch details for: fusion runs to the end.
    assert split_of(requests[:2], 1.000, 1.041)["fusion"] == 1.0
    assert mean_split([]) == dict.fromkeys(SPLIT_PARTS)
