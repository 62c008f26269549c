"""Query latency: 8 concurrent clients calling the worker's authenticated /search, at k=10 and k=100,
once with the index idle and once while a steady stream of real edits runs (the edits of the `steady`
scenario, at the same rate, through the whole pipeline).

Each client sends its next query as soon as the last one answered (a closed loop), so the figures are
what 8 busy search services would see; queries are the golden set's (streams eval), cycled. Cycled
queries would soon all come from the server's query-vector cache: each cell reports how many did
(`cached_queries`), and a run with `STREAMS_QUERY_VECTOR_CACHE_SIZE=0` in the worker measures the model too.

On a machine shared with other work latency moves with the load, so each cell also reports the CPU
milliseconds per query that Elasticsearch and the search server used (`cpu_ms_per_query`): what a
change to the query costs, much less disturbed by the neighbours.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from streams.bench.cpu import cpu_seconds, listening_pid, process_cpu_seconds
from streams.bench.probes import BenchError, Progress
from streams.bench.stats import summary
from streams.settings import Settings

CLIENTS = 8
KS = (10, 100)
QUERIES = Path(__file__).resolve().parents[2] / "eval" / "streams-golden" / "queries.jsonl"
FALLBACK_QUERIES = ("deadlock detected", "autovacuum", "certificate has expired", "renewal quote", "WAL archiving")


def queries() -> list[str]:
    try:
        return [json.loads(line)["text"] for line in QUERIES.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError, KeyError):
        return list(FALLBACK_QUERIES)


def cached_query_vectors(metrics_text: str) -> tuple[float, float]:
    """(cached, encoded) query vectors so far, from the search server's /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    counts = {"cached": 0.0, "encoded": 0.0}
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "streams_query_vectors":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("outcome") in counts:
                    counts[sample.labels["outcome"]] = sample.value
    return counts["cached"], counts["encoded"]


async def _query_vector_counts(http: httpx.AsyncClient) -> tuple[float, float] | None:
    try:
        return cached_query_vectors((await http.get("/metrics")).text)
    except (httpx.HTTPError, ValueError):
        return None


async def _clients(settings: Settings, key: str, texts: list[str], k: int, duration_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + duration_s

    async def client(n: int, http: httpx.AsyncClient) -> None:
        order = texts[n::CLIENTS] + texts[:n:CLIENTS] or texts
        i = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                response = await http.get("/search", params={"q": order[i % len(order)], "k": str(k)})
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}: {response.text[:120]}")
                else:
                    latencies.append(time.perf_counter() - started)
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            i += 1

    limits = httpx.Limits(max_connections=CLIENTS)
    headers = {"Authorization": f"Bearer {key}"}
    server = listening_pid(settings.worker_web_port)
    async with httpx.AsyncClient(base_url=settings.worker_url(), headers=headers, limits=limits, timeout=30) as http:
        vectors_before = await _query_vector_counts(http)
        es_before, server_before = cpu_seconds(settings).get("elasticsearch", 0.0), process_cpu_seconds(server)
        await asyncio.gather(*(client(n, http) for n in range(CLIENTS)))
        es_after, server_after = cpu_seconds(settings).get("elasticsearch", 0.0), process_cpu_seconds(server)
        vectors_after = await _query_vector_counts(http)
    result: dict[str, Any] = {"latency_ms": summary([x * 1000 for x in latencies], digits=1)}
    result["queries_per_s"] = round(len(latencies) / duration_s, 1)
    answered = max(len(latencies), 1)
    result["cpu_ms_per_query"] = {
        "elasticsearch": round((es_after - es_before) * 1000 / answered, 1),
        "search_server": round((server_after - server_before) * 1000 / answered, 1) if server else None,
    }
    if vectors_before is not None and vectors_after is not None:
        cached, encoded = (after - before for after, before in zip(vectors_after, vectors_before, strict=True))
        result["cached_queries"] = round(cached / max(cached + encoded, 1), 3)
    result["errors"] = len(errors)
    result["error_samples"] = errors[:3]
    return result


def _edit_stream(settings: Settings, client: Any, rate: float, stop: threading.Event, failures: list[str]) -> int:
    """Real edits at `rate` per second until `stop` (the steady scenario's edits); the number made."""
    from streams.bench.steady import _ids, _live, make_edit

    rng = random.Random()
    targets = _live(client, settings.index_alias, *_ids(settings))
    n = 0
    started = time.monotonic()
    while not stop.is_set():
        delay = started + n / rate - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        try:
            make_edit(n, rng, *targets)
        except Exception as exc:  # a failed edit is counted, the load goes on
            failures.append(f"{type(exc).__name__}: {exc}")
        n += 1
    return n


def run(settings: Settings, client: Any, progress: Progress, *, duration_s: float, rate: float) -> dict[str, Any]:
    from streams.auth import ensure_local_keys, local_key

    ensure_local_keys(settings)
    try:
        key = local_key(settings, "local-operator")
    except Exception as exc:
        raise BenchError(f"no search key for the bench: {exc}") from exc
    texts = queries()
    result: dict[str, Any] = {"clients": CLIENTS, "duration_s": duration_s, "queries": len(texts), "rate_per_s": rate}
    for load in ("idle", "edits"):
        stop = threading.Event()
        failures: list[str] = []
        made: list[int] = []
        editor = None
        if load == "edits":
            editor = threading.Thread(
                target=lambda made=made, stop=stop, failures=failures: made.append(
                    _edit_stream(settings, client, rate, stop, failures)
                ),
                daemon=True,
            )
            editor.start()
        try:
            for k in KS:
                progress(f"search: {CLIENTS} clients, k={k}, {load}, {duration_s:.0f}s")
                figures = asyncio.run(_clients(settings, key, texts, k, duration_s))
                result[f"{load}_k{k}"] = figures
                lat = figures["latency_ms"]
                cpu = figures["cpu_ms_per_query"]
                progress(
                    f"search: k={k} {load}: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
                    f"{figures['queries_per_s']} queries/s, {figures['errors']} errors; CPU ms/query: "
                    f"Elasticsearch {cpu['elasticsearch']}, search server {cpu['search_server']}; "
                    f"cached query vectors {figures.get('cached_queries')}"
                )
        finally:
            stop.set()
            if editor is not None:
                editor.join(timeout=30)
        if load == "edits":
            result["edits_made"] = made[0] if made else None
            result["edit_failures"] = len(failures)
    return result
