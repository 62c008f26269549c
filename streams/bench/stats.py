"""The pure parts of the benchmark: summaries (percentiles from streams.percentiles, the same definition
the freshness reports use), the machine description and the report's shape."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Mapping, Sequence
from typing import Any

from streams.percentiles import percentile
from streams.settings import EMBEDDING_BACKENDS

REQUIRED_KEYS: tuple[str, ...] = (
    "machine",
    "steady.freshness_s.p50",
    "steady.freshness_s.p95",
    "steady.freshness_s.p99",
    "steady.freshness_s.max",
    "steady.events",
    "backfill.pipeline_chunks_per_s",
    "backfill.encode_chunks_per_s",
    "backfill.ratio",
    "incremental.chunks_embedded_per_edit",
    "incremental.chunks_written_per_edit",
    "incremental.whole_doc_chunks_per_edit",
    "incremental.freshness_s.p50",
    "forget.locate_s.p50",
    "forget.locate_s.max",
    "forget.unsearchable_s.p50",
    "forget.unsearchable_s.max",
    "forget.backlog_unsearchable_s.p50",
    "forget.backlog_unsearchable_s.max",
    "search.idle_k10.latency_ms.p95",
    "search.idle_k100.latency_ms.p95",
    "search.edits_k10.latency_ms.p95",
    "search.edits_k100.latency_ms.p95",
    "embedding.configured_backend",
    "embedding.fastest_agreeing",
    "embedding.auto.chosen",
    # One block per backend and length class (torch-fp16 only where there is a CUDA GPU: null elsewhere).
    *(
        f"embedding.{backend}.{length}.{figure}"
        for backend in EMBEDDING_BACKENDS
        for length in ("short", "median", "full")
        for figure in ("chunks_per_s", "min_cosine", "mean_cosine")
    ),
)
# Scenarios in the order they run; those in STACKLESS need neither the stack nor a worker.
SCENARIOS: tuple[str, ...] = ("embedding", "steady", "applications", "backfill", "incremental", "forget", "search")
STACKLESS: tuple[str, ...] = ("embedding",)


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float | int | None]:
    """count, p50, p95, p99, max and mean of `values` (None for each figure when there are none)."""

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, digits)

    return {
        "count": len(values),
        "p50": r(percentile(values, 0.50)) if values else None,
        "p95": r(percentile(values, 0.95)) if values else None,
        "p99": r(percentile(values, 0.99)) if values else None,
        "max": r(max(values)) if values else None,
        "mean": r(sum(values) / len(values)) if values else None,
    }


def ratio(numerator: float | None, denominator: float | None, digits: int = 3) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, digits)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus-style quantile (0..1) from cumulative (upper bound, count) buckets, +Inf last."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    target = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= target:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (target - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def machine() -> dict[str, Any]:
    """CPU model, cores and memory of this machine (no hostname)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib: float | None = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def lookup(report: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path; KeyError naming the path when a level is absent."""
    node: Any = report
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            raise KeyError(dotted)
        node = node[key]
    return node


def _set_default(report: dict[str, Any], dotted: str) -> None:
    node = report
    keys = dotted.split(".")
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node.setdefault(keys[-1], None)


def assemble(
    results: Mapping[str, Mapping[str, Any]], machine_info: Mapping[str, Any], options: Mapping[str, Any]
) -> dict[str, Any]:
    """The bench report: every scenario's result, with every required key present (None when a
    scenario failed or was skipped; its `error` says why)."""
    report: dict[str, Any] = {"machine": dict(machine_info), "options": dict(options)}
    for name in SCENARIOS:
        result = results.get(name)
        report[name] = dict(result) if result is not None else {"error": "not run"}
    for dotted in REQUIRED_KEYS:
        _set_default(report, dotted)
    return report


def missing_keys(report: Mapping[str, Any]) -> list[str]:
    missing = []
    for dotted in REQUIRED_KEYS:
        try:
            lookup(report, dotted)
        except KeyError:
            missing.append(dotted)
    return missing
