"""Incremental: one-paragraph edits of a long wiki page. The proportional promise says an edit
re-embeds the changed paragraph's chunks, not the page: chunks embedded per edit (the worker's
counter) against the page's chunk count (what re-embedding the whole document would cost)."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from streams.bench.probes import BenchError, Progress, counter_delta, scrape, states, visible_chunk_count, wait_for
from streams.bench.stats import summary
from streams.settings import Settings
from streams.sources import edits


def _revision(client: Any, alias: str, document_id: str) -> int:
    state = states(client, alias, [document_id]).get(document_id) or {}
    return int(((state.get("parts") or {}).get("revision") or {}).get("order_key") or 0)


def _reached(client: Any, alias: str, document_id: str, rev_id: int) -> Callable[[], bool]:
    return lambda: _revision(client, alias, document_id) >= rev_id


def run(
    settings: Settings, client: Any, progress: Progress, *, edits_count: int, timeout_s: float = 180.0
) -> dict[str, Any]:
    rng = random.Random(7)
    page = edits.long_wiki_page()
    document_id = f"wiki/page/{page}"
    alias = settings.index_alias
    if not wait_for(lambda: visible_chunk_count(client, alias, document_id) > 0, timeout_s):
        raise BenchError(f"{document_id} is not indexed")
    whole = visible_chunk_count(client, alias, document_id)
    progress(f"incremental: page {page} has {whole} chunks; {edits_count} one-paragraph edits")
    per_edit: list[float] = []
    freshness: list[float] = []
    for n in range(edits_count):
        before = scrape(settings)
        rev_id = edits.edit_wiki_paragraph(page, rng)
        committed = time.time()
        if not wait_for(_reached(client, alias, document_id, rev_id), timeout_s, 0.1):
            raise BenchError(f"revision {rev_id} of {document_id} was not searchable within {timeout_s:.0f}s")
        freshness.append(time.time() - committed)
        time.sleep(0.5)  # let the counter of the same batch be scraped after the write
        per_edit.append(counter_delta(before, scrape(settings), "streams_chunks_embedded_total"))
        progress(f"incremental: edit {n + 1}: {per_edit[-1]:.0f} chunks embedded, searchable in {freshness[-1]:.2f}s")
    return {
        "page_id": page,
        "edits": edits_count,
        "chunks_embedded_per_edit": statistics.median(per_edit),
        "chunks_embedded_each": per_edit,
        "whole_doc_chunks_per_edit": whole,
        "fraction_of_document": round(statistics.median(per_edit) / whole, 4) if whole else None,
        "freshness_s": summary(freshness),
        "note": (
            "median of the worker's embedded-counter delta per edit; other writers' edits in the same window count too"
        ),
    }
