"""Incremental: one-paragraph edits of a long wiki page. The proportional promise says an edit
re-embeds the changed paragraph's chunks, not the page: chunks embedded per edit (the worker's
counter) against the page's chunk count (what re-embedding the whole document would cost). Every
edit is by another author than the one before (a re-attribution), and the chunks *written* per
edit are reported too: a change of author must cost the state record, not the page's chunks."""

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
    written: list[float] = []
    freshness: list[float] = []
    for n in range(edits_count):
        before = scrape(settings)
        author = f"bench.incremental.{'ab'[n % 2]}@example.com"  # never the previous edit's author
        rev_id = edits.edit_wiki_paragraph(page, rng, author_email=author)
        committed = time.time()
        if not wait_for(_reached(client, alias, document_id, rev_id), timeout_s, 0.1):
            raise BenchError(f"revision {rev_id} of {document_id} was not searchable within {timeout_s:.0f}s")
        freshness.append(time.time() - committed)
        time.sleep(0.5)  # let the counter of the same batch be scraped after the write
        after = scrape(settings)
        per_edit.append(counter_delta(before, after, "streams_chunks_embedded_total"))
        written.append(counter_delta(before, after, "streams_chunks_written_total"))
        progress(
            f"incremental: edit {n + 1} (author {author}): {per_edit[-1]:.0f} chunks embedded, {written[-1]:.0f} "
            f"written, searchable in {freshness[-1]:.2f}s"
        )
    return {
        "page_id": page,
        "edits": edits_count,
        "chunks_embedded_per_edit": statistics.median(per_edit),
        "chunks_embedded_each": per_edit,
        "chunks_written_per_edit": statistics.median(written),
        "chunks_written_each": written,
        "whole_doc_chunks_per_edit": whole,
        "fraction_of_document": round(statistics.median(per_edit) / whole, 4) if whole else None,
        "freshness_s": summary(freshness),
        "note": (
            "medians of the worker's embedded and written counter deltas per edit, each edit by another author than "
            "the last; other writers' edits in the same window count too"
        ),
    }
