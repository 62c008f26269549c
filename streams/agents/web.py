"""The worker's HTTP endpoints: /metrics (Prometheus), /freshness (JSON), /search (hybrid search)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.agents.runtime import get_runtime
from streams.app import app, settings
from streams.elastic.hybrid_index import hybrid_search
from streams.observability import metrics


def _oldest_ages() -> dict[str, float]:
    return {source: metrics.OLDEST_UNINDEXED_AGE.labels(source=source)._value.get() for source in settings.sources}


@app.page("/metrics")
async def metrics_page(web: Any, request: Any) -> Any:
    return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])


@app.page("/freshness")
async def freshness_page(web: Any, request: Any) -> Any:
    runtime = await get_runtime(settings)
    figures = runtime.freshness.recent(_oldest_ages())
    return web.json({"worker_id": settings.worker_id, "sources": [f.to_json() for f in figures]})


@app.page("/search")
async def search_page(web: Any, request: Any) -> Any:
    query = request.query.get("q", "").strip()
    if not query:
        return web.json({"error": "missing query parameter q"}, status=400)
    try:
        k = int(request.query.get("k", "10"))
    except ValueError:
        return web.json({"error": "k must be an integer"}, status=400)
    sources = [s for s in request.query.get("source", "").split(",") if s] or None
    groups_param = request.query.get("groups")
    groups = None if groups_param is None else [g for g in groups_param.split(",") if g]
    runtime = await get_runtime(settings)
    vector = (await runtime.embedder.encode_async([query]))[0]
    hits = await hybrid_search(runtime.es, settings.index_alias, query, vector, k, sources, groups)
    return web.json({"query": query, "hits": [hit.to_json() for hit in hits]})
