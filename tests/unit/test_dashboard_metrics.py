"""The Grafana dashboard only asks Prometheus for metrics the worker really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics_core import Metric

from streams.observability import metrics  # noqa: F401  (registers every metric)
from streams.settings import PROJECT_ROOT

OBSERVABILITY = PROJECT_ROOT / "observability"
DASHBOARD = json.loads((OBSERVABILITY / "grafana" / "dashboards" / "streams.json").read_text())
DATASOURCES = yaml.safe_load(
    (OBSERVABILITY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
)

# The series names each metric type exposes (prometheus_client also adds *_created).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}
PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
}


def _exported_series_names() -> set[str]:
    """Every series name the registry can expose, labelled metrics without samples included."""
    names: set[str] = set()
    family: Metric
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def _expressions() -> Iterator[tuple[str, str]]:
    for panel in DASHBOARD["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once functions, groupings,
    label matchers, ranges, strings, numbers and keywords are removed."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors ($__rate_interval included)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # groupings
    expr = re.sub(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(", "(", expr)  # function and aggregation names
    expr = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", "", expr)  # numbers
    tokens = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return tokens - PROMQL_KEYWORDS


def test_metric_name_extraction() -> None:
    expr = 'histogram_quantile(0.95, sum by (source, le) (rate(streams_freshness_seconds_bucket{source="wiki"}[5m])))'
    assert metric_names(expr) == {"streams_freshness_seconds_bucket"}
    assert metric_names("rate(a_total[$__rate_interval]) / rate(b_seconds_total[1m])") == {"a_total", "b_seconds_total"}
    assert metric_names("sum by (topic) (streams_consumer_lag_messages) > 10") == {"streams_consumer_lag_messages"}


@pytest.mark.parametrize(("title", "expr"), list(_expressions()))
def test_every_dashboard_query_uses_exported_metrics(title: str, expr: str) -> None:
    used = metric_names(expr)
    assert used, f"panel {title!r}: no metric in {expr!r}"
    unknown = used - _exported_series_names()
    assert not unknown, f"panel {title!r} queries metrics the worker does not export: {sorted(unknown)}"


def test_histogram_quantiles_read_buckets() -> None:
    for title, expr in _expressions():
        if "histogram_quantile" in expr:
            assert all(name.endswith("_bucket") for name in metric_names(expr)), title


def test_the_dashboard_covers_the_freshness_story() -> None:
    used = set().union(*(metric_names(expr) for _, expr in _expressions()))
    for name in (
        "streams_freshness_seconds_bucket",
        "streams_oldest_unindexed_event_age_seconds",
        "streams_consumer_lag_messages",
        "streams_chunks_embedded_total",
        "streams_chunks_reused_total",
        "streams_embedding_throughput_chunks_per_second",
        "streams_dead_letters_total",
        "streams_deletion_request_seconds_bucket",
        "streams_source_capture_age_seconds",
    ):
        assert name in used, f"no panel shows {name}"


def test_panels_use_the_provisioned_datasource() -> None:
    uids = {source["uid"] for source in DATASOURCES["datasources"]}
    targets: list[dict[str, Any]] = [t for panel in DASHBOARD["panels"] for t in panel.get("targets", [])]
    assert targets
    assert {t["datasource"]["uid"] for t in targets} <= uids
    assert len({panel["id"] for panel in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])
