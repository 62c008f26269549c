"""Bulk work never delays live work, on the real stack: a bulk import of tickets (one transaction, a
burst from one table) is routed to the backfill lane, and live edits to a CRM note and a wiki page
made while it drains are searchable before it has drained. How fast is the benchmark's business
(`streams bench`, the backfill scenario); this test asserts the order only."""

from __future__ import annotations

import random
from typing import Any

import pytest

from streams.settings import Settings
from streams.sources import edits
from streams.sources.connect import connect_postgres
from tests.integration.helpers import es_client, found_documents, metrics_value, refresh, unique, wait_until

pytestmark = pytest.mark.integration

BULK_TICKETS = 400
WORDS = (
    "replication slot lag vacuum checkpoint autovacuum index bloat wal archive standby failover"
    " connection pool timeout deadlock lock contention query plan sequential scan"
).split()


def _bulk_import(settings: Settings, tag: str, count: int) -> None:
    """`count` tickets in one transaction, each with a text of its own (new chunks to embed)."""
    rng = random.Random(tag)
    rows = []
    for n in range(count):
        words = " ".join(rng.choice(WORDS) for _ in range(180))
        rows.append((f"Imported ticket {n} {tag}", f"{tag} imported record {n}. {words}", f"import{n}@example.com"))
    with connect_postgres(settings.dsn("tickets"), name="tickets") as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO tickets (subject, description, status, priority, requester_email, access_groups)"
            " VALUES (%s, %s, 'new', 'normal', %s, ARRAY['support'])",
            rows,
        )


def _indexed_documents(es: Any, settings: Settings, word: str) -> int:
    refresh(es, settings)
    answer = es.search(
        index=settings.index_alias,
        size=0,
        query={"match": {"text": word}},
        aggs={"documents": {"cardinality": {"field": "document_id", "precision_threshold": 4000}}},
    )
    return int(answer["aggregations"]["documents"]["value"])


def test_live_edits_are_searchable_while_a_bulk_import_drains(worker: Settings) -> None:
    es = es_client(worker)
    first = unique("firstnote")
    contact = edits.add_contact("Lane", "Probe", unique("lane") + "@example.com", ["sales"])
    note = edits.add_note(contact, "owner@example.com", f"A first note about the probe: {first}.")
    page = edits.new_wiki_page(
        unique("Lane probe page "), f"A page about lanes: {first}.", ["engineering"], "w@example.com"
    )
    assert wait_until(lambda: len(found_documents(es, first)) == 2, timeout=120)
    backfill_before = metrics_value("streams_routed_total", {"lane": "backfill"})

    bulk = unique("bulk")
    _bulk_import(worker, bulk, BULK_TICKETS)
    # The import is being routed to the backfill lane before the live edits are made.
    assert wait_until(
        lambda: metrics_value("streams_routed_total", {"lane": "backfill"}) >= backfill_before + BULK_TICKETS / 2,
        timeout=120,
    )
    note_word, page_word = unique("livenote"), unique("livepage")
    edits.update_note(note, body=f"The probe note now says {note_word}.")
    edits.replace_wiki_text(page, f"The probe page now says {page_word}.", "w@example.com")

    seen: dict[str, int] = {}
    for word in (note_word, page_word):
        assert wait_until(lambda w=word: bool(found_documents(es, w)), timeout=300), word
        seen[word] = _indexed_documents(es, worker, bulk)
    # Each live edit was searchable while the import was still draining: live work did not queue
    # behind it.
    assert all(indexed < BULK_TICKETS for indexed in seen.values()), seen
    # And the import is indexed whole in the end, most of it through the backfill lane (its first
    # changes, routed before the burst threshold was reached, went live).
    assert wait_until(lambda: _indexed_documents(es, worker, bulk) >= BULK_TICKETS, timeout=600, interval=2.0)
    assert metrics_value("streams_routed_total", {"lane": "backfill"}) >= backfill_before + BULK_TICKETS / 2
