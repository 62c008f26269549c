"""Indexing through the real stack: real edits in the source databases, captured by Debezium, indexed by
the running worker, checked in the real Elasticsearch index; one insert, update and delete per source is
also checked through the worker's /search, as a search service sees it (marker `e2e`). Each test makes
its own uniquely named data and never resets anything. Waits poll with a generous deadline; assertions
check the final state only."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from typing import Any

import pytest

from streams import avro
from streams.settings import Settings
from streams.sources import edits
from streams.sources.connect import connect_postgres
from tests.integration.helpers import (
    embedded_since_marked,
    es_client,
    found_documents,
    hybrid,
    mark_vectors,
    messages_after,
    metrics_value,
    produce,
    row_events,
    state_record,
    topic_end_offsets,
    unique,
    visible_chunks,
    wait_processed,
    wait_until,
)

pytestmark = pytest.mark.integration

TICKETS_TOPIC = "tickets.public.tickets"
COMMENTS_TOPIC = "tickets.public.ticket_comments"


def _email(tag: str) -> str:
    return f"{tag}.{unique('p')}@example.com"


def _set_ticket_description(ticket_id: int, description: str, settings: Settings) -> None:
    with connect_postgres(settings.dsn("tickets"), name="tickets") as conn:
        conn.execute("UPDATE tickets SET description = %s, updated_at = now() WHERE id = %s", (description, ticket_id))


def _new_wiki_revision(page_id: int, text: str, author_email: str) -> int:
    conn = edits._wiki(None)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT page_latest FROM page WHERE page_id = %s FOR UPDATE", (page_id,))
            parent = int(cur.fetchone()[0])
            rev_id = edits._add_revision(cur, page_id, parent, author_email, "Rewrote", text)
        conn.commit()
        return rev_id
    finally:
        conn.close()


def _found(es: Any, word: str, document_id: str) -> bool:
    return document_id in found_documents(es, word)


def _gone(es: Any, word: str, document_id: str) -> bool:
    return document_id not in found_documents(es, word)


def _served(document_id: str, word: str) -> bool:
    """Whether the worker's /search, as a search service calls it, returns `document_id` with a text
    holding `word` (kNN always returns neighbours, so being listed says less than the returned text)."""
    hits = [hit for hit in hybrid(word, k=5)["hits"] if hit["document_id"] == document_id]
    return word in json.dumps(hits)


def _assert_served(document_id: str, present: str, absent: str | None = None) -> None:
    assert wait_until(lambda: _served(document_id, present)), f"/search does not serve {document_id} for {present}"
    if absent:
        assert wait_until(lambda: not _served(document_id, absent)), f"/search still serves {document_id} for {absent}"


def _assert_not_served(document_id: str, *words: str) -> None:
    for word in words:
        assert wait_until(lambda: not _served(document_id, word)), f"/search still serves {document_id} for {word}"  # noqa: B023


# -- 1. insert, update, delete in every source, checked in the index and through /search ---------------


@pytest.mark.e2e
def test_ticket_insert_update_delete(worker: Settings) -> None:
    es = es_client(worker)
    old, new = unique(), unique()
    ticket_id = edits.add_ticket(f"Ticket {old}", f"The printer says {old} on boot.", _email("req"), ["support"])
    doc = f"tickets/ticket/{ticket_id}"
    wait_until(lambda: _found(es, old, doc))
    assert doc in found_documents(es, old)
    _assert_served(doc, old)

    _set_ticket_description(ticket_id, f"Now the printer says {new} instead.", worker)
    edits.close_ticket(ticket_id)  # the title keeps `old`: check the description's word moved
    wait_until(lambda: _found(es, new, doc) and all(old not in c["text"] for c in visible_chunks(es, doc)))
    assert doc in found_documents(es, new)
    assert all(old not in chunk["text"] for chunk in visible_chunks(es, doc))
    _assert_served(doc, new)

    edits.delete_ticket(ticket_id)
    wait_until(lambda: not visible_chunks(es, doc))
    assert visible_chunks(es, doc) == []
    assert doc not in found_documents(es, new)
    assert doc not in found_documents(es, old)
    _assert_not_served(doc, new, old)


@pytest.mark.e2e
def test_crm_note_insert_update_delete(worker: Settings) -> None:
    es = es_client(worker)
    old, new = unique(), unique()
    contact_id = edits.add_contact("Nora", unique("n").title(), _email("contact"))
    note_id = edits.add_note(contact_id, _email("rep"), f"Discussed the {old} renewal on the call.", title="Call")
    doc = f"crm/note/{note_id}"
    wait_until(lambda: _found(es, old, doc))
    assert doc in found_documents(es, old)
    _assert_served(doc, old)

    edits.update_note(note_id, body=f"Discussed the {new} renewal on the call.")
    wait_until(lambda: _found(es, new, doc) and _gone(es, old, doc))
    assert doc in found_documents(es, new)
    assert doc not in found_documents(es, old)
    _assert_served(doc, new, absent=old)

    edits.delete_note(note_id)
    wait_until(lambda: _gone(es, new, doc))
    assert doc not in found_documents(es, new)
    assert visible_chunks(es, doc) == []
    _assert_not_served(doc, new)


@pytest.mark.e2e
def test_wiki_page_insert_update_delete(worker: Settings) -> None:
    es = es_client(worker)
    old, new = unique(), unique()
    author = _email("author")
    page_id = edits.new_wiki_page(
        f"Runbook {unique('t')}", f"== Setup ==\n\nRestart the {old} daemon after upgrades.", ["engineering"], author
    )
    doc = f"wiki/page/{page_id}"
    wait_until(lambda: _found(es, old, doc))
    assert doc in found_documents(es, old)
    _assert_served(doc, old)

    _new_wiki_revision(page_id, f"== Setup ==\n\nRestart the {new} daemon after upgrades.", author)
    wait_until(lambda: _found(es, new, doc) and _gone(es, old, doc))
    assert doc in found_documents(es, new)
    assert doc not in found_documents(es, old)
    _assert_served(doc, new, absent=old)

    edits.delete_wiki_page(page_id)
    wait_until(lambda: _gone(es, new, doc))
    assert doc not in found_documents(es, new)
    assert visible_chunks(es, doc) == []
    _assert_not_served(doc, new)


# -- 2. a comment's edit or delete touches only that comment ----------------------------------------


def test_comment_edit_and_delete_touch_only_that_comment(worker: Settings) -> None:
    es = es_client(worker)
    root_word, first, second, edited = unique(), unique(), unique(), unique()
    ticket_id = edits.add_ticket(f"VPN {root_word}", f"The VPN drops with {root_word}.", _email("req"), ["support"])
    c1 = edits.add_ticket_comment(ticket_id, _email("agent"), f"Tried {first} without luck.")
    c2 = edits.add_ticket_comment(ticket_id, _email("agent"), f"Customer confirms {second} helps.")
    doc = f"tickets/ticket/{ticket_id}"
    wait_until(lambda: _found(es, first, doc) and _found(es, second, doc) and _found(es, root_word, doc))
    before = {c["_id"]: c for c in visible_chunks(es, doc)}
    part1, part2 = f"ticket_comments/{c1}", f"ticket_comments/{c2}"
    assert {c["part_id"] for c in before.values()} >= {"root", part1, part2}

    edits.edit_ticket_comment(c1, f"Tried {edited} and it worked.")
    wait_until(lambda: _found(es, edited, doc) and _gone(es, first, doc))
    after = {c["_id"]: c for c in visible_chunks(es, doc)}
    assert doc in found_documents(es, edited) and doc not in found_documents(es, first)
    for chunk_id, chunk in before.items():
        if chunk["part_id"] != part1:  # every other chunk is untouched: same hash, not rewritten
            assert after[chunk_id]["text_hash"] == chunk["text_hash"]
            assert after[chunk_id]["indexed_at"] == chunk["indexed_at"], chunk_id
    assert {c["text_hash"] for c in after.values() if c["part_id"] == part1} != {
        c["text_hash"] for c in before.values() if c["part_id"] == part1
    }

    edits.delete_ticket_comment(c1)
    wait_until(lambda: _gone(es, edited, doc))
    final = {c["_id"]: c for c in visible_chunks(es, doc)}
    assert not [c for c in final.values() if c["part_id"] == part1]
    for chunk_id, chunk in after.items():
        if chunk["part_id"] != part1:
            assert final[chunk_id]["indexed_at"] == chunk["indexed_at"], chunk_id
    assert doc in found_documents(es, root_word)
    assert doc in found_documents(es, second)


# -- 3. proportional cost -------------------------------------------------------------------------


def _revision_order_key(es: Any, doc: str) -> int | None:
    state = state_record(es, doc)
    part = (state or {}).get("parts", {}).get("revision") or {}
    return part.get("order_key")


def _latest_revision(page_id: int) -> int:
    conn = edits._wiki(None)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT page_latest FROM page WHERE page_id = %s", (page_id,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _long_page() -> int:
    """A page of 50-odd chunks or more; on a fresh stack, seed the wiki (its longest pages come first)."""
    page_id = edits.long_wiki_page()
    if edits.page_length(page_id) < 40_000:
        subprocess.run([sys.executable, "-m", "streams.cli", "seed", "--docs", "5", "--source", "wiki"], check=True)
        page_id = edits.long_wiki_page()
    return page_id


def test_one_paragraph_edit_of_a_long_page_embeds_at_most_two_chunks(worker: Settings) -> None:
    es = es_client(worker)
    page_id = _long_page()
    doc = f"wiki/page/{page_id}"
    latest = _latest_revision(page_id)
    indexed = wait_until(lambda: _revision_order_key(es, doc) == latest and len(visible_chunks(es, doc)) > 40, 300)
    assert indexed, f"{doc} is not indexed at its latest revision {latest}"
    rng = random.Random()
    hashes_before = {c["text_hash"] for c in visible_chunks(es, doc)}
    marks = mark_vectors(es, doc)
    rev_id = edits.edit_wiki_paragraph(page_id, rng)
    assert wait_until(lambda: _revision_order_key(es, doc) == rev_id, timeout=60), f"revision {rev_id} never indexed"
    # Texts that are new to the page: chunks that merely moved (renumbered) keep their text and vector.
    changed = len({c["text_hash"] for c in visible_chunks(es, doc)} - hashes_before)
    assert 1 <= changed <= 2, f"{changed} chunk texts changed for a one-paragraph edit"
    embedded = embedded_since_marked(es, doc, marks)
    assert 1 <= len(embedded) <= 2, f"{len(embedded)} chunks embedded for a one-paragraph edit: {embedded}"


def test_groups_only_change_embeds_nothing(worker: Settings) -> None:
    es = es_client(worker)
    word = unique()
    ticket_id = edits.add_ticket(f"Invoice {word}", f"Invoice {word} is wrong.", _email("req"), ["support"])
    doc = f"tickets/ticket/{ticket_id}"
    wait_until(lambda: _found(es, word, doc))
    groups = ["billing", "exec"]
    hashes_before = {c["_id"]: c["text_hash"] for c in visible_chunks(es, doc)}
    marks = mark_vectors(es, doc)
    edits.set_ticket_groups(ticket_id, groups)
    wait_until(lambda: all(sorted(c["groups"]) == sorted(groups) for c in visible_chunks(es, doc)))
    chunks = visible_chunks(es, doc)
    assert chunks and all(sorted(c["groups"]) == sorted(groups) for c in chunks), chunks
    assert {c["_id"]: c["text_hash"] for c in chunks} == hashes_before
    embedded = embedded_since_marked(es, doc, marks)
    assert embedded == [], f"a groups-only change embedded {embedded}"


# -- 4. ordering: replays, duplicates, reversed order, late updates after a delete ----------------------


def _stale_events() -> float:
    return metrics_value("streams_events_total", {"outcome": "stale"}) + metrics_value(
        "streams_events_total", {"outcome": "suppressed"}
    )


def _replay(topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    """Produce old events again and wait until the worker has committed past them, so that whatever it
    did with them (nothing, if it judged them stale) is in the index before the test looks."""
    stale_before = _stale_events()
    delivered = produce(topic, records)
    assert wait_processed(topic, delivered), f"the worker did not commit past the replayed records {delivered}"
    judged = _stale_events() - stale_before
    assert judged >= len(records), f"{judged} of {len(records)} replayed events were judged stale or suppressed"


def test_replayed_duplicated_reversed_events_keep_the_newest_state(worker: Settings) -> None:
    es = es_client(worker)
    words = [unique() for _ in range(3)]
    ticket_id = edits.add_ticket(f"Disk {unique()}", f"Disk full: {words[0]}.", _email("req"), ["support"])
    doc = f"tickets/ticket/{ticket_id}"
    for word in words[1:]:
        _set_ticket_description(ticket_id, f"Disk full: {word}.", worker)
    wait_until(lambda: _found(es, words[-1], doc))
    newest = visible_chunks(es, doc)
    events = wait_until(lambda: [e for e in row_events(TICKETS_TOPIC, {"id": ticket_id}) if e[1]], timeout=30)
    assert len(events) == 3, f"expected 3 captured events for ticket {ticket_id}, found {len(events)}"
    versions = [json.loads(value)["source"]["lsn"] for _, value in events]

    replay = list(reversed(events)) + events[:2] + events[:1]  # reversed, then duplicates of old ones
    _replay(TICKETS_TOPIC, replay)

    chunks = visible_chunks(es, doc)
    assert chunks, "the ticket disappeared after a replay"
    assert all(words[-1] in c["text"] for c in chunks if c["part_id"] == "root")
    assert not any(w in c["text"] for c in chunks for w in words[:2])
    assert {c["version"] for c in chunks if c["part_id"] == "root"} == {max(versions)}
    assert [c["text_hash"] for c in chunks] == [c["text_hash"] for c in newest]
    assert doc in found_documents(es, words[-1])
    assert doc not in found_documents(es, words[0]) and doc not in found_documents(es, words[1])


def test_delete_then_late_older_update_stays_deleted_beyond_gc_deletes(worker: Settings) -> None:
    es = es_client(worker)
    from streams.elastic.generations import index_name

    index = index_name(worker.index_alias)
    word, later = unique(), unique()
    ticket_id = edits.add_ticket(f"Laptop {word}", f"Laptop {word} broken.", _email("req"), ["support"])
    doc = f"tickets/ticket/{ticket_id}"
    _set_ticket_description(ticket_id, f"Laptop {later} broken.", worker)
    wait_until(lambda: _found(es, later, doc))
    es.indices.put_settings(index=index, settings={"index": {"gc_deletes": "1s"}})
    try:
        edits.delete_ticket(ticket_id)
        wait_until(lambda: not visible_chunks(es, doc))
        assert visible_chunks(es, doc) == []
        # Not a synchronisation: the scenario needs gc_deletes to have elapsed (Elasticsearch then forgets
        # the deleted chunks' versions), and no API tells when it has.
        time.sleep(5)
        events = [e for e in row_events(TICKETS_TOPIC, {"id": ticket_id}) if e[1]]
        updates = [e for e in events if json.loads(e[1])["op"] in ("c", "u")]
        assert len(updates) >= 2
        _replay(TICKETS_TOPIC, updates[::-1])
        es.indices.refresh(index=worker.index_alias)
        assert visible_chunks(es, doc) == []
        assert doc not in found_documents(es, later) and doc not in found_documents(es, word)
        assert (state_record(es, doc) or {}).get("root", {}).get("deleted") is True
    finally:
        es.indices.put_settings(index=index, settings={"index": {"gc_deletes": "60s"}})


# -- 5. poison events --------------------------------------------------------------------------------


def test_poison_events_go_to_the_dead_letter_topic_and_the_rest_flows(worker: Settings) -> None:
    es = es_client(worker)
    before_word, after_word = unique(), unique()
    dead_start = topic_end_offsets(worker.dead_letter_topic)
    first = edits.add_ticket(f"Before {before_word}", f"Real change {before_word}.", _email("req"), ["support"])
    wait_until(lambda: row_events(TICKETS_TOPIC, {"id": first}), timeout=30)
    template = json.loads(row_events(TICKETS_TOPIC, {"id": first})[0][1])
    bad_op = {**template, "op": "x"}
    poison = [
        (b'{"id": 987654321}', b"\x07this is not json {{{"),
        (b'{"id": 987654322}', json.dumps(bad_op).encode()),
    ]
    origins = produce(TICKETS_TOPIC, poison)
    second = edits.add_ticket(f"After {after_word}", f"Real change {after_word}.", _email("req"), ["support"])

    def dead_letters() -> list[dict[str, Any]]:
        records = [avro.decode("dead_letter", m.value()) for m in messages_after(worker.dead_letter_topic, dead_start)]
        return [r for r in records if r["origin_topic"] == TICKETS_TOPIC]

    def ours() -> dict[tuple[int, int], dict[str, Any]]:
        return {
            (r["origin_partition"], r["origin_offset"]): r
            for r in dead_letters()
            if (r["origin_partition"], r["origin_offset"]) in origins
        }

    wait_until(lambda: len(ours()) == 2, timeout=60)
    found = ours()
    assert set(found) == set(origins)
    garbage, wrong_op = found[origins[0]], found[origins[1]]
    for record, (key, value) in ((garbage, poison[0]), (wrong_op, poison[1])):
        assert record["stage"] == "decode"
        assert record["value"] == value and record["key"] == key
    assert "not JSON" in garbage["error"]
    assert "'x'" in wrong_op["error"] and "op" in wrong_op["error"]

    first_doc, second_doc = f"tickets/ticket/{first}", f"tickets/ticket/{second}"
    wait_until(lambda: _found(es, before_word, first_doc) and _found(es, after_word, second_doc))
    assert f"tickets/ticket/{first}" in found_documents(es, before_word)
    assert f"tickets/ticket/{second}" in found_documents(es, after_word)


# -- 6. access groups -------------------------------------------------------------------------------


def test_access_groups_filter_hybrid_search(worker: Settings) -> None:
    es = es_client(worker)
    word = unique()
    ticket_id = edits.add_ticket(f"Refund {word}", f"Refund request {word} for invoice.", _email("req"), ["billing"])
    doc = f"tickets/ticket/{ticket_id}"
    wait_until(lambda: _found(es, word, doc))
    billing = wait_until(lambda: doc in {h["document_id"] for h in hybrid(word, ["billing"])["hits"]})
    assert billing, "a billing agent cannot find the billing ticket"
    support = hybrid(word, ["support"], k=50)
    assert doc not in {hit["document_id"] for hit in support["hits"]}
    text = json.dumps(support["hits"])
    assert word not in text and f'/tickets/{ticket_id}"' not in text
    assert doc not in {h["document_id"] for h in hybrid(word, [], k=50)["hits"]}
