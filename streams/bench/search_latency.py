"""Query latency: 8 concurrent clients calling the worker's authenticated /search, at k=10 and k=100,
once with the index idle and once while a steady stream of real edits runs (the edits of the `steady`
scenario, at the same rate, through the whole pipeline).

Each client sends its next query as soon as the last one answered (a closed loop), so the figures are
what 8 busy search services would see; queries are the golden set's (streams eval), cycled. Cycled
queries would soon all come from the server's query-vector cache: each cell reports how many did
(`cached_queries`), and a run with `STREAMS_QUERY_VECTOR_CACHE_SIZE=0` in the worker measures the model too.

Beside each /search cell runs a direct one: the same clients, queries, k, load and duration, but each
client calls `hybrid_index.search_page` itself, straight on Elasticsearch, with vectors encoded before
the cells start. That is Elasticsearch's floor for the same requests; `ratio_p50` and `ratio_p95`
(/search ÷ direct) say how far above it the worker serves, and the direct client's split of each
search (the two retrievers side by side, fusion, the details request) and the query-embedding cost
say where the time goes.

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from streams.bench.cpu import cpu_seconds, listening_pid, process_cpu_seconds
from streams.bench.probes import BenchError, Progress
from streams.bench.stats import ratio, summary
from streams.elastic import hybrid_index
from streams.settings import Settings

CLIENTS = 8
KS = (10, 100)
QUERIES = Path(__file__).resolve().parents[2] / "eval" / "streams-golden" / "queries.jsonl"
FALLBACK_QUERIES = ("deadlock detected", "autovacuum", "certificate has expired", "renewal quote", "WAL archiving")
SPLIT_PARTS = ("retrievers", "fusion", "details", "other")

Ask = Callable[[str], Awaitable[str | None]]  # one query -> None once answered, else what went wrong


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


# -- the closed loop both cells run ---------------------------------------------------------------


async def _closed_loop(texts: list[str], duration_s: float, ask: Ask) -> tuple[list[float], list[str]]:
    """CLIENTS clients, each asking its next query as soon as the last one answered, until the deadline:
    the seconds each answered query took, and what went wrong with the others."""
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + duration_s

    async def client(n: int) -> None:
        order = texts[n::CLIENTS] + texts[:n:CLIENTS] or texts
        i = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            error = await ask(order[i % len(order)])
            if error is None:
                latencies.append(time.perf_counter() - started)
            else:
                errors.append(error)
            i += 1

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return latencies, errors


def _answered(latencies: list[float], errors: list[str], duration_s: float) -> dict[str, Any]:
    return {
        "latency_ms": summary([x * 1000 for x in latencies], digits=1),
        "queries_per_s": round(len(latencies) / duration_s, 1),
        "errors": len(errors),
        "error_samples": errors[:3],
    }


def _ms_per_query(cpu_s: float, answered: int) -> float:
    return round(cpu_s * 1000 / max(answered, 1), 1)


# -- /search through the worker -------------------------------------------------------------------


async def _search_cell(settings: Settings, key: str, texts: list[str], k: int, duration_s: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=CLIENTS)
    headers = {"Authorization": f"Bearer {key}"}
    server = listening_pid(settings.worker_web_port)
    async with httpx.AsyncClient(base_url=settings.worker_url(), headers=headers, limits=limits, timeout=30) as http:

        async def ask(text: str) -> str | None:
            try:
                response = await http.get("/search", params={"q": text, "k": str(k)})
            except httpx.HTTPError as exc:
                return f"{type(exc).__name__}: {exc}"
            return None if response.status_code == 200 else f"HTTP {response.status_code}: {response.text[:120]}"

        vectors_before = await _query_vector_counts(http)
        es_before, server_before = cpu_seconds(settings).get("elasticsearch", 0.0), process_cpu_seconds(server)
        latencies, errors = await _closed_loop(texts, duration_s, ask)
        es_after, server_after = cpu_seconds(settings).get("elasticsearch", 0.0), process_cpu_seconds(server)
        vectors_after = await _query_vector_counts(http)
    result = _answered(latencies, errors, duration_s)
    result["cpu_ms_per_query"] = {
        "elasticsearch": _ms_per_query(es_after - es_before, len(latencies)),
        "search_server": _ms_per_query(server_after - server_before, len(latencies)) if server else None,
    }
    if vectors_before is not None and vectors_after is not None:
        cached, encoded = (after - before for after, before in zip(vectors_after, vectors_before, strict=True))
        result["cached_queries"] = round(cached / max(cached + encoded, 1), 3)
    return result


# -- the same search straight on Elasticsearch ----------------------------------------------------


@dataclass(frozen=True)
class TimedRequest:
    kind: str  # "bm25", "knn" or "details"
    started: float
    finished: float


def request_kind(body: Mapping[str, Any]) -> str:
    """Which of search_page's requests a search is: the kNN retriever's body has `knn`, the details
    request highlights, the BM25 retriever does neither."""
    if "knn" in body:
        return "knn"
    return "details" if "highlight" in body else "bm25"


class TimedSearches:
    """The client search_page is given in the direct cell: it forwards each `search` to Elasticsearch
    and times it, so that one search splits into its parts while search_page stays the one path."""

    def __init__(self, client: AsyncElasticsearch) -> None:
        self.client = client
        self.requests: list[TimedRequest] = []

    async def search(self, **request: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.client.search(**request)
        finally:
            self.requests.append(TimedRequest(request_kind(request), started, time.perf_counter()))


def split_of(requests: Sequence[TimedRequest], started: float, finished: float) -> dict[str, float]:
    """Milliseconds of one search_page call by part: the two retrievers side by side (first sent to
    last answered), fusion (from then until the details request is sent, or the end without one), the
    details request, and the rest (building the bodies before, reading the details after)."""
    retrievers = [r for r in requests if r.kind != "details"]
    details = [r for r in requests if r.kind == "details"]
    retrieved = max(r.finished for r in retrievers)
    parts = {
        "retrievers": retrieved - min(r.started for r in retrievers),
        "fusion": (details[0].started if details else finished) - retrieved,
        "details": sum(r.finished - r.started for r in details),
    }
    parts["other"] = finished - started - sum(parts.values())
    return {name: round(seconds * 1000, 3) for name, seconds in parts.items()}


async def direct_search(
    client: AsyncElasticsearch, index: str, query: str, vector: Sequence[float], k: int
) -> dict[str, float]:
    """The search /search runs for the bench's key, sent by this process: the local-operator key plans
    to every source, no group filter (the operator's unrestricted view), no metadata filter, the first
    page, with the total. Returns its split (split_of)."""
    timed = TimedSearches(client)
    started = time.perf_counter()
    es = cast(AsyncElasticsearch, timed)  # search_page only calls `search` on its client
    await hybrid_index.search_page(es, index, query, vector, k, None, None, with_total=True)
    return split_of(timed.requests, started, time.perf_counter())


def mean_split(splits: Sequence[Mapping[str, float]]) -> dict[str, float | None]:
    """The mean milliseconds of each part over the searches answered (None for each when none was)."""
    return {part: round(sum(s[part] for s in splits) / len(splits), 2) if splits else None for part in SPLIT_PARTS}


async def _direct_cell(
    settings: Settings, index: str, texts: list[str], vectors: Mapping[str, list[float]], k: int, duration_s: float
) -> dict[str, Any]:
    from streams.clients import async_elasticsearch_client

    splits: list[dict[str, float]] = []
    async with async_elasticsearch_client(settings) as es:

        async def ask(text: str) -> str | None:
            try:
                splits.append(await direct_search(es, index, text, vectors[text], k))
            except (ApiError, TransportError) as exc:
                return f"{type(exc).__name__}: {exc}"
            return None

        es_before = cpu_seconds(settings).get("elasticsearch", 0.0)
        latencies, errors = await _closed_loop(texts, duration_s, ask)
        es_after = cpu_seconds(settings).get("elasticsearch", 0.0)
    result = _answered(latencies, errors, duration_s)
    result["cpu_ms_per_query"] = {"elasticsearch": _ms_per_query(es_after - es_before, len(latencies))}
    result["split_ms"] = mean_split(splits)
    return result


def latency_ratios(search_ms: Mapping[str, Any], direct_ms: Mapping[str, Any]) -> dict[str, float | None]:
    """/search ÷ direct at p50 and p95; None where either cell answered nothing."""
    return {f"ratio_{q}": ratio(search_ms.get(q), direct_ms.get(q)) for q in ("p50", "p95")}


def serving_target(settings: Settings, client: Any) -> tuple[str, Settings]:
    """What the worker's `search_target` picks: the concrete index the alias serves, and the settings of
    the model its mapping records (the configured model for an index that records none)."""
    from streams.agents.runtime import generation_settings
    from streams.elastic.generations import read_config, serving_index

    index = serving_index(client, settings.index_alias)
    if index is None:
        raise BenchError(f"the alias {settings.index_alias} points at no index")
    config = read_config(client, index)
    return index, generation_settings(settings, config) if config else settings


def query_vectors(settings: Settings, texts: Sequence[str]) -> tuple[dict[str, list[float]], list[float]]:
    """Each distinct query's vector, encoded once as the search server encodes one it has not cached
    (`encode_query`, the query model), and the milliseconds each encoding took."""
    from streams.embedding.embedder import Embedder

    embedder = Embedder.from_settings(settings)
    embedder.encode_query(texts[0])  # load the model and warm up outside the timing
    vectors: dict[str, list[float]] = {}
    took_ms: list[float] = []
    for text in dict.fromkeys(texts):
        started = time.perf_counter()
        vectors[text] = embedder.encode_query(text)
        took_ms.append((time.perf_counter() - started) * 1000)
    return vectors, took_ms


# -- the scenario ---------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class _Cells:
    """What every cell of one run shares."""

    settings: Settings
    key: str
    index: str
    texts: list[str]
    vectors: dict[str, list[float]]
    duration_s: float


def _measure(cells: _Cells, k: int, load: str, progress: Progress) -> dict[str, Any]:
    """One /search cell and the direct cell beside it, under the same load."""
    progress(f"search: {CLIENTS} clients, k={k}, {load}, {cells.duration_s:.0f}s")
    figures = asyncio.run(_search_cell(cells.settings, cells.key, cells.texts, k, cells.duration_s))
    lat, cpu = figures["latency_ms"], figures["cpu_ms_per_query"]
    progress(
        f"search: k={k} {load}: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
        f"{figures['queries_per_s']} queries/s, {figures['errors']} errors; CPU ms/query: "
        f"Elasticsearch {cpu['elasticsearch']}, search server {cpu['search_server']}; "
        f"cached query vectors {figures.get('cached_queries')}"
    )
    progress(f"search: {CLIENTS} clients, k={k}, {load}, direct to Elasticsearch, {cells.duration_s:.0f}s")
    direct = asyncio.run(_direct_cell(cells.settings, cells.index, cells.texts, cells.vectors, k, cells.duration_s))
    figures.update({f"direct_{name}": value for name, value in direct.items()})
    figures.update(latency_ratios(lat, direct["latency_ms"]))
    d, split = direct["latency_ms"], direct["split_ms"]
    progress(
        f"search: k={k} {load} direct: p50 {d['p50']} ms, p95 {d['p95']} ms, p99 {d['p99']} ms, "
        f"{direct['queries_per_s']} queries/s, {direct['errors']} errors; CPU ms/query: Elasticsearch "
        f"{direct['cpu_ms_per_query']['elasticsearch']}; /search ÷ direct: p50 {figures['ratio_p50']}, "
        f"p95 {figures['ratio_p95']}; mean ms: " + ", ".join(f"{part} {split[part]}" for part in SPLIT_PARTS)
    )
    return figures


def run(settings: Settings, client: Any, progress: Progress, *, duration_s: float, rate: float) -> dict[str, Any]:
    from streams.auth import ensure_local_keys, local_key

    ensure_local_keys(settings)
    try:
        key = local_key(settings, "local-operator")
    except Exception as exc:
        raise BenchError(f"no search key for the bench: {exc}") from exc
    texts = queries()
    index, model = serving_target(settings, client)
    progress(f"search: encoding the {len(set(texts))} queries once each with {model.model_name}, uncached")
    vectors, encode_ms = query_vectors(model, texts)
    embedding = summary(encode_ms, digits=2)
    progress(f"search: one query's vector: mean {embedding['mean']} ms, p95 {embedding['p95']} ms")
    result: dict[str, Any] = {"clients": CLIENTS, "duration_s": duration_s, "queries": len(texts), "rate_per_s": rate}
    result.update({"index": index, "query_embedding_ms": embedding})
    cells = _Cells(settings, key, index, texts, vectors, duration_s)
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
                result[f"{load}_k{k}"] = _measure(cells, k, load, progress)
        finally:
            stop.set()
            if editor is not None:
                editor.join(timeout=30)
        if load == "edits":
            result["edits_made"] = made[0] if made else None
            result["edit_failures"] = len(failures)
    return result
