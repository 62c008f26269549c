"""The pure parts of `streams bench`: percentiles, histogram quantiles, report assembly."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from streams.bench.stats import (
    REQUIRED_KEYS,
    SCENARIOS,
    assemble,
    histogram_quantile,
    lookup,
    machine,
    missing_keys,
    ratio,
    summary,
)


def test_summary_figures() -> None:
    figures = summary([float(x) for x in range(1, 101)])
    assert figures["count"] == 100
    # Nearest rank (streams.percentiles), as in the freshness reports; interpolated, these were 50.5 and 95.05.
    assert figures["p50"] == 50.0
    assert figures["p95"] == 95.0
    assert figures["max"] == 100.0
    assert figures["mean"] == pytest.approx(50.5)
    empty = summary([])
    assert empty == {"count": 0, "p50": None, "p95": None, "p99": None, "max": None, "mean": None}


def test_ratio_guards_missing_figures() -> None:
    assert ratio(50.0, 100.0) == 0.5
    assert ratio(None, 100.0) is None
    assert ratio(50.0, 0.0) is None


def test_histogram_quantile_from_cumulative_buckets() -> None:
    buckets = [(1.0, 0.0), (2.0, 10.0), (4.0, 20.0), (math.inf, 20.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(2.0)
    assert histogram_quantile(0.75, buckets) == pytest.approx(3.0)
    assert histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.99, [(1.0, 0.0), (math.inf, 5.0)]) == 1.0  # beyond the last bound


def test_assembled_report_has_every_required_key_even_when_scenarios_fail() -> None:
    results: dict[str, dict[str, Any]] = {
        "steady": {"events": 75, "freshness_s": summary([1.0, 2.0, 3.0])},
        "backfill": {"error": "RuntimeError: no worker"},
    }
    report = assemble(results, {"cpu": "test cpu", "cores": 2}, {"quick": True})
    assert missing_keys(report) == []
    assert lookup(report, "steady.freshness_s.p50") == 2.0
    assert lookup(report, "steady.events") == 75
    assert report["backfill"]["error"].startswith("RuntimeError")
    assert lookup(report, "backfill.ratio") is None
    assert report["incremental"]["error"] == "not run"
    assert set(SCENARIOS) <= set(report)
    json.dumps(report)  # serializable as it stands


def test_missing_keys_names_the_dotted_path() -> None:
    assert "steady.events" in missing_keys({"machine": {}})
    assert len(missing_keys({})) == len(REQUIRED_KEYS)
    with pytest.raises(KeyError):
        lookup({"a": {"b": 1}}, "a.c")


def test_machine_describes_cpu_cores_and_memory_without_hostname() -> None:
    import socket

    info = machine()
    assert {"cpu", "cores", "memory_gib"} <= set(info)
    assert socket.gethostname() not in json.dumps(info)
