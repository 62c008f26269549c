"""Ask a golden set's queries through the same search the users get, once per ranking (hybrid, BM25
alone, kNN alone), and score each ranking with ranx."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from elasticsearch import AsyncElasticsearch

from streams.elastic.hybrid_index import (
    DEFAULT_TUNING,
    MODES,
    DocumentHit,
    Retrieved,
    SearchTuning,
    retrieve,
    search_page,
)
from streams.eval.golden_set import GoldenSet
from streams.eval.load_collection import LoadedCollection
from streams.eval.metrics import DEPTH, METRICS, ranking_scores, score_run
from streams.percentiles import percentile

CONCURRENCY = 4  # queries in flight: enough to keep Elasticsearch busy, few enough for a 2-core laptop


async def rankings(
    client: AsyncElasticsearch,
    index: str,
    golden: GoldenSet,
    vectors: dict[str, Sequence[float]],
    loaded: LoadedCollection,
    modes: Sequence[str] = MODES,
    tuning: SearchTuning = DEFAULT_TUNING,
    latencies: dict[str, list[float]] | None = None,
) -> dict[str, dict[str, list[str]]]:
    """mode -> query id -> corpus ids, best first (results outside the collection are dropped). With
    `latencies`, each search's seconds are appended to latencies[mode]."""
    corpus_ids = loaded.corpus_ids()
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(mode: str, qid: str) -> tuple[str, str, list[str]]:
        async with limit:
            asked = time.monotonic()
            page = await search_page(
                client,
                index,
                golden.queries[qid],
                vectors[qid],
                DEPTH,
                None,
                loaded.search_groups,
                mode=mode,
                tuning=tuning,
                highlight=False,
            )
            if latencies is not None:
                latencies.setdefault(mode, []).append(time.monotonic() - asked)
        return mode, qid, corpus_ranking(page.hits, corpus_ids)

    results: dict[str, dict[str, list[str]]] = {mode: {} for mode in modes}
    for mode, qid, ranked in await asyncio.gather(*(one(m, q) for m in modes for q in golden.queries)):
        results[mode][qid] = ranked
    return results


async def retrievals(
    client: AsyncElasticsearch,
    index: str,
    golden: GoldenSet,
    vectors: dict[str, Sequence[float]],
    loaded: LoadedCollection,
    tuning: SearchTuning = DEFAULT_TUNING,
) -> dict[str, Retrieved]:
    """query id -> the retrievers' hits that `rankings` fuses for hybrid search (the same call, one
    step short of fusion): `streams eval tune` fuses them under many fusion settings."""
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(qid: str) -> tuple[str, Retrieved]:
        async with limit:
            hits = await retrieve(
                client, index, golden.queries[qid], vectors[qid], DEPTH, None, loaded.search_groups, tuning=tuning
            )
        return qid, hits

    return dict(await asyncio.gather(*(one(qid) for qid in golden.queries)))


def corpus_ranking(hits: Sequence[DocumentHit], corpus_ids: dict[str, str]) -> list[str]:
    """The corpus ids of ranked index documents, best first; a document outside the collection is dropped."""
    return [corpus_ids[hit.document_id] for hit in hits if hit.document_id in corpus_ids]


def build_report(
    golden: GoldenSet,
    loaded: LoadedCollection,
    ranked: dict[str, dict[str, list[str]]],
    index: str,
    tuning: SearchTuning,
    seconds: float,
    latencies: dict[str, list[float]] | None = None,
) -> dict[str, Any]:
    modes: dict[str, Any] = {}
    for mode, by_query in ranked.items():
        run = {qid: ranking_scores(ids) for qid, ids in by_query.items()}
        total, per_query = score_run(golden.qrels, run)
        modes[mode] = {"total": {m: round(total[m], 4) for m in METRICS}, "queries": per_query}
        if latencies and latencies.get(mode):
            # beside the totals, not among them: the gate compares totals where higher is better
            modes[mode]["latency_ms"] = {"p95": round(percentile(latencies[mode], 0.95) * 1000, 1)}
    return {
        "set": golden.name,
        "queries": len(golden.queries),
        "documents": len(loaded.documents),
        "group": loaded.group,
        "source": loaded.source,
        "index": index,
        "tuning": dataclasses.asdict(tuning),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
        "modes": modes,
        "query_texts": golden.queries,
    }


def evaluate_set(
    client_factory: Callable[[], AsyncElasticsearch],
    encode: Callable[[list[str]], Sequence[Sequence[float]]],
    index: str,
    golden: GoldenSet,
    loaded: LoadedCollection,
    modes: Sequence[str] = MODES,
    tuning: SearchTuning = DEFAULT_TUNING,
) -> dict[str, Any]:
    started = time.monotonic()
    qids = list(golden.queries)
    vectors = dict(zip(qids, encode([golden.queries[q] for q in qids]), strict=True))

    latencies: dict[str, list[float]] = {}

    async def run() -> dict[str, dict[str, list[str]]]:
        async with client_factory() as client:
            return await rankings(client, index, golden, vectors, loaded, modes, tuning, latencies)

    ranked = asyncio.run(run())
    return build_report(golden, loaded, ranked, index, tuning, time.monotonic() - started, latencies)
