"""Steady load: real edits across the three sources at a fixed rate, each one timed from its commit
until search sees it (polled through the index's state records), next to the worker's own
freshness histogram over the same window."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.bench.cpu import cpu_seconds, cpu_used
from streams.bench.probes import BenchError, Progress, bucket_delta, counter_delta, restarted, scrape, states, wait_for
from streams.bench.stats import histogram_quantile, summary
from streams.bench.timed_edits import EditLoad, freshness
from streams.settings import Settings
from streams.sources import edits
from streams.sources.connect import connect_mariadb, connect_postgres

Applied = Callable[[dict[str, Any] | None], bool]


@dataclass
class Edit:
    source: str
    document_id: str
    applied: Applied
    committed_at: float
    seen_at: float | None = None


def _ids(settings: Settings) -> tuple[list[int], list[int], list[int]]:
    conn = connect_mariadb(settings.dsn("wiki"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT page_id FROM page WHERE page_latest > 0 ORDER BY page_id DESC LIMIT 200")
            pages = [int(r[0]) for r in cur.fetchall()]
    finally:
        conn.close()
    with connect_postgres(settings.dsn("tickets")) as pg:
        # Not the tickets of a golden set (`streams eval load` marks them product 'eval'): edits would change it.
        query = "SELECT id FROM tickets WHERE product <> 'eval' ORDER BY id DESC LIMIT 200"
        tickets = [int(r[0]) for r in pg.execute(query).fetchall()]
    with connect_postgres(settings.dsn("crm")) as pg:
        contacts = [int(r[0]) for r in pg.execute("SELECT id FROM contacts ORDER BY id DESC LIMIT 200").fetchall()]
    if not (pages and tickets and contacts):
        raise BenchError("the sources are empty: run `streams seed` first")
    return pages, tickets, contacts


def _live(
    client: Any, alias: str, pages: list[int], tickets: list[int], contacts: list[int]
) -> tuple[list[int], list[int], list[int]]:
    """Only documents the index shows (a forgotten subject's document never comes back, by design)."""
    found = states(
        client,
        alias,
        [f"wiki/page/{p}" for p in pages]
        + [f"tickets/ticket/{t}" for t in tickets]
        + [f"crm/contact/{c}" for c in contacts],
    )

    def keep(prefix: str, ids: list[int]) -> list[int]:
        return [i for i in ids if _root_live(found.get(f"{prefix}/{i}"))]

    chosen = keep("wiki/page", pages), keep("tickets/ticket", tickets), keep("crm/contact", contacts)
    if not all(chosen):
        raise BenchError("no indexed documents to edit in some source: is the worker keeping up?")
    return chosen


def _has_part(part_id: str) -> Applied:
    return lambda state: bool(state) and part_id in (state.get("parts") or {})  # type: ignore[union-attr]


def _revision_at_least(rev_id: int) -> Applied:
    def applied(state: dict[str, Any] | None) -> bool:
        part = ((state or {}).get("parts") or {}).get("revision") or {}
        return int(part.get("order_key") or 0) >= rev_id

    return applied


def _root_live(state: dict[str, Any] | None) -> bool:
    root = (state or {}).get("root")
    return bool(root) and not root.get("deleted")  # type: ignore[union-attr]


def make_edit(n: int, rng: random.Random, pages: list[int], tickets: list[int], contacts: list[int]) -> Edit:
    """One real edit in the source named by n % 3; returns it with its commit time."""
    kind = n % 3
    if kind == 0:
        page = rng.choice(pages)
        # Wikis are edited by many people: two times in three the author differs from the page's
        # last one, which moves the revision's subject and so rewrites (not re-embeds) every chunk.
        author = rng.choice([None, "bench.author.a@example.com", "bench.author.b@example.com"])
        rev_id = edits.edit_wiki_paragraph(page, rng, author_email=author)
        return Edit("wiki", f"wiki/page/{page}", _revision_at_least(rev_id), time.time())
    if kind == 1:
        ticket = rng.choice(tickets)
        body = f"Bench update {n}: the customer confirmed the workaround helps for now."
        comment = edits.add_ticket_comment(ticket, "bench.agent@example.com", body)
        return Edit("tickets", f"tickets/ticket/{ticket}", _has_part(f"ticket_comments/{comment}"), time.time())
    contact = rng.choice(contacts)
    note = edits.add_note(
        contact, "bench.agent@example.com", f"Bench call {n}: discussed renewal timing.", title="Call"
    )
    return Edit("crm", f"crm/note/{note}", _root_live, time.time())


def searchable(client: Any, alias: str, pending: list[Edit]) -> list[Edit]:
    """The pending edits whose change the index's state records show."""
    found = states(client, alias, {e.document_id for e in pending})
    return [edit for edit in pending if edit.applied(found.get(edit.document_id))]


def run(
    settings: Settings, client: Any, progress: Progress, *, rate: float, duration_s: float, drain_s: float = 90.0
) -> dict[str, Any]:
    seed = random.randrange(10**6)  # recorded: a run can be replayed with the same edits
    rng = random.Random(seed)
    pages, tickets, contacts = _live(client, settings.index_alias, *_ids(settings))
    before = scrape(settings)
    cpu_before = cpu_seconds(settings)
    total = int(rate * duration_s)
    load: EditLoad[Edit] = EditLoad()
    progress(f"steady: {total} edits at {rate}/s over {duration_s:.0f}s")
    load.start("edits", total, 1 / rate, lambda n: make_edit(n, rng, pages, tickets, contacts))

    load.wait_searchable(
        lambda pending: searchable(client, settings.index_alias, pending),
        progress,
        lambda made, seen: f"steady: {made}/{total} edits committed, {seen} searchable",
        drain_s=drain_s,
    )
    made, failures = load.made, load.failures
    after = scrape(settings)
    cpu = cpu_used(cpu_before, cpu_seconds(settings))
    embedded = counter_delta(before, after, "streams_chunks_embedded_total")
    reused = counter_delta(before, after, "streams_chunks_reused_total")
    fresh = freshness(made)
    per_source = {s: summary(freshness(e for e in made if e.source == s)) for s in sorted({e.source for e in made})}
    delta = bucket_delta(before, after, "streams_freshness_seconds")
    worker_events = delta[-1][1] if delta else 0.0
    return {
        "rate_per_s": rate,
        "duration_s": duration_s,
        "seed": seed,
        "events": len(made),
        "searchable": len(fresh),
        "never_searchable": len(made) - len(fresh),
        "never_searchable_documents": sorted({e.document_id for e in made if e.seen_at is None})[:10],
        "edit_failures": len(failures),
        "edit_errors": failures[:5],
        "freshness_s": summary(fresh),
        "freshness_by_source_s": per_source,
        "freshness_samples_s": [round(x, 3) for x in fresh],
        "worker_histogram": {
            "events": worker_events,
            "p50": _round(histogram_quantile(0.50, delta)),
            "p95": _round(histogram_quantile(0.95, delta)),
            "p99": _round(histogram_quantile(0.99, delta)),
            "worker_restarted": restarted(before, after),
            "note": "from streams_freshness_seconds bucket deltas over the window (all rows the worker applied)",
        },
        "cpu_s": cpu,
        # Chunks the worker wrote in the window: embedded (new text) and rewritten with a reused vector.
        "chunks_embedded": embedded,
        "chunks_rewritten_reusing_vector": reused,
        "method": "external: commit returned -> state record shows the change through _search (0.2 s polls)",
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def warm_up(settings: Settings, client: Any, progress: Progress, timeout_s: float = 240.0) -> float:
    """Wait until one real edit flows end to end (a worker that answers HTTP may still be joining
    its consumer group); returns the seconds it took."""
    pages, tickets, contacts = _live(client, settings.index_alias, *_ids(settings))
    edit = make_edit(1, random.Random(), pages, tickets, contacts)
    progress("warm-up: waiting until one edit is searchable")

    def flowed() -> bool:
        return edit.applied(states(client, settings.index_alias, [edit.document_id]).get(edit.document_id))

    if wait_for(flowed, timeout_s, 0.5):
        took = time.time() - edit.committed_at
        progress(f"warm-up: the pipeline flows ({took:.1f}s)")
        return took
    raise BenchError(f"no edit became searchable within {timeout_s:.0f}s: is the worker consuming?")
