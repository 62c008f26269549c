"""The search bench reads how many query vectors the server took from its cache."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from streams.bench.search_latency import cached_query_vectors


def test_cached_and_encoded_query_vectors_are_read_from_metrics_text() -> None:
    registry = CollectorRegistry()
    counter = Counter("streams_query_vectors_total", "query vectors", ["outcome"], registry=registry)
    counter.labels(outcome="cached").inc(7)
    counter.labels(outcome="encoded").inc(3)

    assert cached_query_vectors(generate_latest(registry).decode()) == (7.0, 3.0)


def test_a_server_without_the_counter_reads_as_nothing_cached() -> None:
    assert cached_query_vectors("# HELP other x\n# TYPE other counter\nother_total 5.0\n") == (0.0, 0.0)
