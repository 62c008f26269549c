"""Backfill: a burst of new documents through the pipeline (chunks embedded per second of wall
time), against the raw encode rate of the configured embedding backend (STREAMS_EMBEDDING_BACKEND,
as the worker uses) on the same chunk texts in this process.

The burst: `streams seed` of tickets and CRM into the existing databases (a new --seed), plus copies
of existing wiki pages under new titles (the wiki seed would reuse titles that already exist). While
it drains, live edits and deletion requests are timed until the index shows them (backfill_probes.py):
bulk work must not delay them."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams.bench.backfill_probes import LiveProbes
from streams.bench.cpu import cpu_seconds, cpu_used
from streams.bench.probes import BenchError, Progress, WorkerLag, restarted, scrape, states
from streams.bench.stats import ratio
from streams.settings import Settings
from streams.sources import edits
from streams.sources.connect import connect_mariadb, connect_postgres

EMBEDDED = "streams_chunks_embedded_total"
LAG_SLACK = 5
# A copied wiki page is a whole manual page, ten chunks or more where a ticket or a CRM record makes one
# to three: a third of a burst of thousands as wiki copies would make the wiki most of its embedding
# work. A third of the burst, up to this many, are wiki pages; the rest are tickets and CRM.
WIKI_COPIES = 100
# The root tables of the burst's tickets and CRM documents: (document id prefix, source, table).
ROOTS = (("tickets/ticket", "tickets", "tickets"), ("crm/contact", "crm", "contacts"), ("crm/note", "crm", "notes"))
# The rows of a root's documents besides its own (`rows` in the report): (root prefix, table, column).
CHILD_ROWS = (("tickets/ticket", "ticket_comments", "ticket_id"),)
WIKI_ROWS_PER_PAGE = 2  # a new page inserts its `page` row and its first `revision`
# How long the worker may take to drain a burst before the run is called failed: 900 s, or a tenth of a
# second per document for a large one (a ticket or CRM record is one to three chunks; the model embeds
# tens of chunks a second on two cores).
DRAIN_FLOOR_S = 900.0
DRAIN_S_PER_DOCUMENT = 0.1
# The raw encode runs on a random sample of the burst's chunk texts (a rate needs no more; encoding all
# of a 50,000-document burst again would take as long as the burst): the same length mix.
ENCODE_SAMPLE = 4000


def drain_limit_s(docs: int) -> float:
    return max(DRAIN_FLOOR_S, DRAIN_S_PER_DOCUMENT * docs)


def _unique(text: str, tag: str) -> str:
    """The text with every prose paragraph marked, so that its chunks are new (not reused) text."""
    blocks = text.split("\n\n")
    for i in edits.editable_paragraphs(text):
        blocks[i] = f"{blocks[i].rstrip()} (bench copy {tag})"
    return "\n\n".join(blocks)


def _max_ids(settings: Settings) -> dict[str, int]:
    found: dict[str, int] = {}
    for prefix, source, table in ROOTS:
        with connect_postgres(settings.dsn(source), name=source) as pg:
            row = pg.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
        found[prefix] = int(row[0]) if row else 0
    return found


def _new_documents(settings: Settings, before: dict[str, int]) -> list[str]:
    """Documents whose root rows were inserted since `before` (ids above the old maxima)."""
    documents: list[str] = []
    for prefix, source, table in ROOTS:
        with connect_postgres(settings.dsn(source), name=source) as pg:
            rows = pg.execute(f"SELECT id FROM {table} WHERE id > %s", (before[prefix],)).fetchall()
        documents.extend(f"{prefix}/{row[0]}" for row in rows)
    return documents


def _new_rows(settings: Settings, before: dict[str, int], documents: list[str]) -> dict[str, int]:
    """The rows tickets and CRM inserted since `before`, per table: each new document's root row (from
    `documents`, already read) and its child rows (a comment counts with its ticket)."""
    sources = {prefix: (source, table) for prefix, source, table in ROOTS}
    counted = {table: sum(d.rsplit("/", 1)[0] == prefix for d in documents) for prefix, _, table in ROOTS}
    for prefix, table, column in CHILD_ROWS:
        source = sources[prefix][0]
        with connect_postgres(settings.dsn(source), name=source) as pg:
            row = pg.execute(f"SELECT COUNT(*) FROM {table} WHERE {column} > %s", (before[prefix],)).fetchone()
        counted[table] = int(row[0]) if row else 0
    return counted


def burst_shares(docs: int) -> tuple[int, int]:
    """(wiki pages, tickets and CRM documents) of a burst of `docs` documents."""
    wiki = min(max(1, docs // 3), WIKI_COPIES)
    return wiki, max(2, docs - wiki)


def _copy_wiki_pages(settings: Settings, count: int, rng: random.Random) -> list[str]:
    conn = connect_mariadb(settings.dsn("wiki"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT r.rev_text FROM page p JOIN revision r ON r.rev_id = p.page_latest ORDER BY p.page_id LIMIT 200"
            )
            texts = [str(row[0]) for row in cur.fetchall()]
    finally:
        conn.close()
    if not texts:
        raise BenchError("the wiki has no pages: run `streams seed` first")
    tag = uuid.uuid4().hex[:8]
    documents = []
    for n in range(count):
        text = _unique(rng.choice(texts), f"{tag}{n}")
        page = edits.new_wiki_page(f"Bench copy {tag} {n}", text, ["engineering"], "bench.author@example.com")
        documents.append(f"wiki/page/{page}")
    return documents


@dataclass(frozen=True)
class Burst:
    """The chunks a burst of new documents put in the index, and the wall time it took: from its first
    source commit (or the moment the burst started, if a commit predates it) to its last chunk indexed."""

    chunks: list[dict[str, Any]]
    first_indexed: float
    last_indexed: float
    wall_s: float


def indexed_burst(
    client: Any, alias: str, since: str, started: float, documents: Collection[str] | None = None
) -> Burst:
    """The burst's chunks: indexed since `since`, of `documents` only when given (not the live edits')."""
    client.indices.refresh(index=alias)
    chunks = _new_chunks(client, alias, since)
    if documents is not None:
        wanted = set(documents)
        chunks = [chunk for chunk in chunks if chunk.get("document_id") in wanted]
    if not chunks:
        raise BenchError("no new chunks reached the index")
    first_commit = min(_ts(c["commit_ts"]) for c in chunks if c.get("commit_ts"))
    first_indexed = min(_ts(c["indexed_at"]) for c in chunks)
    last_indexed = max(_ts(c["indexed_at"]) for c in chunks)
    return Burst(chunks, first_indexed, last_indexed, max(last_indexed - max(first_commit, started - 1), 1e-6))


def _new_chunks(client: Any, alias: str, since: str) -> list[dict[str, Any]]:
    query = {"bool": {"filter": [{"term": {"kind": "chunk"}}, {"range": {"indexed_at": {"gte": since}}}]}}
    hits: list[dict[str, Any]] = []
    after: list[Any] | None = None
    while True:
        kwargs: dict[str, Any] = {
            "index": alias,
            "size": 2000,
            "query": query,
            "sort": ["document_id", "part_id", "chunk_number"],
            "_source": ["document_id", "text", "indexed_at", "commit_ts"],
        }
        if after is not None:
            kwargs["search_after"] = after
        page = client.search(**kwargs)["hits"]["hits"]
        hits.extend(page)
        if len(page) < 2000:
            return [h["_source"] for h in hits]
        after = page[-1]["sort"]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def seed_tickets_and_crm(docs: int, seed: int) -> None:
    """`streams seed` in a child process (tickets and CRM), as a user would run it beside the worker."""
    command = [sys.executable, "-m", "streams.cli", "seed", "--docs", str(docs), "--seed", str(seed)]
    done = subprocess.run([*command, "--source", "tickets,crm"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchError(f"streams seed failed: {(done.stderr or done.stdout)[-500:]}")


def run(
    settings: Settings, client: Any, progress: Progress, *, docs: int, people: int = 3, settle_s: float = 20.0
) -> dict[str, Any]:
    rng = random.Random()
    # Live edits and deletion requests through the whole burst; their people are indexed before it.
    live = LiveProbes(settings, client, progress, people=people)
    since = datetime.now(UTC).isoformat()
    started = time.time()
    first = scrape(settings)
    cpu_before = cpu_seconds(settings)
    ids_before = _max_ids(settings)
    wiki_docs, other_docs = burst_shares(docs)
    progress(f"backfill: seeding {other_docs} tickets/CRM documents and copying {wiki_docs} wiki pages")
    live.start()
    seed_tickets_and_crm(other_docs, rng.randrange(10**6))
    imported = _new_documents(settings, ids_before)
    documents = _copy_wiki_pages(settings, wiki_docs, rng) + imported
    rows = {**_new_rows(settings, ids_before, imported), "wiki page and revision": WIKI_ROWS_PER_PAGE * wiki_docs}
    seeded_at = time.time()
    progress(
        f"backfill: {sum(rows.values())} rows ({len(documents)} documents) written in {seeded_at - started:.1f}s;"
        " waiting for the worker"
    )
    last, stable_since, restarts, carried = -1.0, time.monotonic(), 0, 0.0
    during: dict[str, Any] | None = None
    latest = first
    with WorkerLag(settings) as lag:
        limit_s = drain_limit_s(len(documents))
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            try:
                snapshot = scrape(settings)
            except BenchError:  # the worker is restarting: ask again
                time.sleep(1)
                continue
            if restarted(latest, snapshot):  # another process: keep what the old one counted in the window
                carried += latest.value(EMBEDDED) - (first.value(EMBEDDED) if restarts == 0 else 0.0)
                restarts += 1
                progress("backfill: the worker restarted; counting on with the new process")
            latest = snapshot
            current = carried + snapshot.value(EMBEDDED) - (first.value(EMBEDDED) if restarts == 0 else 0.0)
            indexed = len(states(client, settings.index_alias, documents))
            if during is None and indexed >= 0.98 * len(documents):
                # The burst is in the index: the probes have seen it drain. They stop now, so that the
                # chunk counter settles on the burst's own work.
                during = live.stop()
            if current != last:
                last, stable_since = current, time.monotonic()
                progress(f"backfill: {indexed}/{len(documents)} documents indexed, {current:.0f} chunks embedded")
            stable = time.monotonic() - stable_since
            # Done when the worker has committed every change (its chunk counter moves once per batch).
            if indexed >= len(documents) and stable > 2 and lag.behind() <= LAG_SLACK:
                break
            if indexed >= 0.98 * len(documents) and stable > settle_s and lag.behind() <= LAG_SLACK:
                break  # a few may name forgotten subjects
            time.sleep(1)
        else:
            if during is None:
                live.stop(drain_s=0)
            raise BenchError(f"the worker was still embedding after {limit_s:.0f} s")
    embedded_delta = last
    cpu_pipeline = cpu_used(cpu_before, cpu_seconds(settings))
    burst = indexed_burst(client, settings.index_alias, since, started, documents)
    chunks, first_indexed, last_indexed, wall = burst.chunks, burst.first_indexed, burst.last_indexed, burst.wall_s
    pipeline = embedded_delta / wall
    texts = [c["text"] for c in chunks]
    if len(texts) > ENCODE_SAMPLE:
        texts = rng.sample(texts, ENCODE_SAMPLE)
    progress(f"backfill: pipeline {pipeline:.1f} chunks/s; now encoding {len(texts)} of the same texts here")
    from streams.embedding.embedder import Embedder

    embedder = Embedder.from_settings(settings)  # the backend the worker runs, so the ratio is like for like
    embedder.encode(texts[:8])  # load the model and warm up outside the timing
    cpu_before = cpu_seconds(settings)
    t0 = time.perf_counter()
    embedder.encode(texts)
    encode_s = time.perf_counter() - t0
    cpu_encode = cpu_used(cpu_before, cpu_seconds(settings))
    encode_rate = len(texts) / encode_s
    return {
        "documents": len(documents),
        "rows": sum(rows.values()),
        "rows_per_table": rows,
        "documents_indexed": indexed,
        "worker_restarts": restarts,
        "chunks_embedded": embedded_delta,
        "new_chunks_in_index": len(chunks),
        "wall_s": round(wall, 3),
        "first_to_last_indexed_s": round(last_indexed - first_indexed, 3),
        "pipeline_chunks_per_s": round(pipeline, 2),
        "encode_chunks_per_s": round(encode_rate, 2),
        "encode_batch_size": settings.embed_batch_size,
        "encode_backend": embedder.running_backend,
        "configured_backend": settings.embedding_backend,
        "ratio": ratio(pipeline, encode_rate),
        "encode_s": round(encode_s, 1),
        "encoded_texts": len(texts),
        "cpu_s": {"pipeline": cpu_pipeline, "encode": cpu_encode, "cores": os.cpu_count()},
        "documents_per_s": round(len(documents) / wall, 2),
        # Live work while the burst drained: a real edit a second, and a deletion request every few
        # seconds, each timed until the index showed it (backfill_probes.py).
        "during_backfill": during,
        "method": (
            "pipeline: streams_chunks_embedded_total delta / (last new chunk indexed_at - first source commit);"
            " encode: Embedder.from_settings(settings).encode (the configured backend) on the new chunks' texts"
            f" (a random {ENCODE_SAMPLE} where there are more) after the pipeline finished;"
            " the live probes' own edits (one a second, about a chunk each)"
            " count in the pipeline's delta until the burst is in the index"
        ),
    }
