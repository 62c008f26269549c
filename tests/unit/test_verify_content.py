"""The content-aware reconciler, over fakes: content hashes, the comparison, and the repair signals.

`streams verify` must see a lost update: a document whose state record says it applied an older
content than the source holds. These tests plant one and check that the comparison reports it."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.elastic.verify_index import (
    IndexedDocument,
    SourceDocument,
    SourceReport,
    compare,
    source_pages,
)
from streams.pipeline.decode_change_event import decode_change_event
from streams.pipeline.document_mapping import Mappings, load_mappings
from streams.pipeline.update_document_state import apply_changes
from streams.records import ChunkText, PartChange, TextFormat
from streams.settings import Settings
from streams.sources.read_rows import debezium_value, typed_key
from streams.sources.snapshot_signal import snapshot_signal, sql_literal
from streams.verify import repair_signals

ROOT = Path(__file__).resolve().parents[2]
CAPTURED = Path(__file__).parent / "fixtures" / "debezium"


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings(ROOT / "connectors")


def captured(mappings: Mappings, name: str) -> tuple[dict[str, Any], PartChange]:
    fixture = json.loads((CAPTURED / f"{name}.json").read_text())
    key, value = (json.dumps(fixture[part]).encode() for part in ("key", "value"))
    event = decode_change_event(fixture["topic"], key, value)
    assert event is not None
    change = mappings.part_change(event)
    assert change is not None
    return fixture["value"]["after"], change


# -- the content hash ------------------------------------------------------------------------------


def test_a_row_read_by_sql_hashes_like_its_debezium_event(mappings: Mappings) -> None:
    # What psycopg returns for the note the captured event describes: a datetime, not Debezium's string.
    after, change = captured(mappings, "crm.public.notes/update")
    sql_row = {**after, "created_at": datetime(2026, 11, 20, 23, 26, 4, 714067, tzinfo=UTC)}
    read = {column: debezium_value(value) for column, value in sql_row.items()}
    from streams.elastic.verify_index import _row_change_hash

    assert change.content_hash
    assert _row_change_hash(mappings, "crm", "notes", "id", read) == change.content_hash


def test_the_hash_follows_every_mapped_field_and_nothing_else(mappings: Mappings) -> None:
    after, change = captured(mappings, "tickets.public.tickets/update")
    from streams.elastic.verify_index import _row_change_hash

    def hashed(**edits: Any) -> str:
        return _row_change_hash(mappings, "tickets", "tickets", "id", {**after, **edits})

    assert hashed() == change.content_hash
    for edit in (
        {"description": after["description"] + " more"},
        {"subject": "another title"},
        {"access_groups": ["someone-else"]},
        {"status": "closed"},  # metadata
        {"requester_email": "new@example.com"},  # a subject
    ):
        assert hashed(**edit) != change.content_hash, edit
    assert hashed(group_id=999, updated_at="2030-01-01T00:00:00Z") == change.content_hash  # not mapped


def test_one_instant_hashes_the_same_however_debezium_spells_it(mappings: Mappings) -> None:
    after, change = captured(mappings, "crm.public.notes/update")
    from streams.elastic.verify_index import _row_change_hash

    padded = {**after, "created_at": "2026-11-20T23:26:04.714067000Z"}
    assert _row_change_hash(mappings, "crm", "notes", "id", padded) == change.content_hash
    other = {**after, "created_at": "2026-11-20T23:26:05.714067Z"}
    assert _row_change_hash(mappings, "crm", "notes", "id", other) != change.content_hash


def test_driver_values_become_debezium_json() -> None:
    assert debezium_value(datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=UTC)) == "2026-01-02T03:04:05.000060Z"
    assert debezium_value(datetime(1970, 1, 1, 0, 0, 1)) == 1000  # DATETIME: Connect Timestamp millis
    assert debezium_value(Decimal("1.5")) == 1.5
    assert debezium_value(["a", Decimal("2")]) == ["a", 2.0]
    assert typed_key("42") == 42 and typed_key("ab") == "ab"


def chunker(text: str, text_format: TextFormat) -> list[ChunkText]:
    return [ChunkText(0, text)] if text else []


def nobody(subjects: Iterable[str]) -> bool:
    return False


def test_the_state_stores_each_parts_content_hash(mappings: Mappings) -> None:
    _, ticket = captured(mappings, "tickets.public.tickets/update")
    _, comment = captured(mappings, "tickets.public.ticket_comments/update")
    comment = PartChange(**{**comment.__dict__, "document_id": ticket.document_id})
    state = apply_changes(None, [ticket, comment], chunker, nobody).state
    assert state.parts["root"].content_hash == ticket.content_hash
    assert state.parts[comment.part_id].content_hash == comment.content_hash
    assert state.from_json(state.to_json()).parts["root"].content_hash == ticket.content_hash


# -- the comparison ----------------------------------------------------------------------------------


DOC = "tickets/ticket/7"


def indexed(parts: dict[str, dict[str, Any]]) -> dict[str, IndexedDocument]:
    state = {"document_id": DOC, "source": "tickets", "root": {"version": 10, "deleted": False}, "parts": parts}
    visible = {part_id: len(part.get("chunk_hashes", [])) for part_id, part in parts.items()}
    return {DOC: IndexedDocument(state=state, visible_chunks=visible)}


def run_compare(mappings: Mappings, row: SourceDocument, parts: dict[str, dict[str, Any]]) -> SourceReport:
    tables = {d.kind: d for d in mappings.sources[1].documents}
    assert mappings.sources[1].source == "tickets"
    return compare("tickets", tables, {DOC: row}, indexed(parts))


def test_matching_content_is_consistent(mappings: Mappings) -> None:
    row = SourceDocument(parts={"ticket_comments/3"}, hashes={"root": "aaa", "ticket_comments/3": "ccc"})
    parts = {
        "root": {"chunk_hashes": ["x"], "content_hash": "aaa"},
        "ticket_comments/3": {"chunk_hashes": ["y"], "content_hash": "ccc"},
    }
    report = run_compare(mappings, row, parts)
    assert report.ok and report.indexed_documents == 1 and report.unverified == 0


def test_a_lost_update_is_stale(mappings: Mappings) -> None:
    # The comment was edited in the source; its event never reached the index: same keys, old content.
    row = SourceDocument(parts={"ticket_comments/3"}, hashes={"root": "aaa", "ticket_comments/3": "new"})
    parts = {
        "root": {"chunk_hashes": ["x"], "content_hash": "aaa"},
        "ticket_comments/3": {"chunk_hashes": ["y"], "content_hash": "old"},
    }
    report = run_compare(mappings, row, parts)
    (issue,) = report.issues["stale"]
    assert issue.document_id == DOC
    assert "content differs from the source" in issue.reason and "ticket_comments/3" in issue.reason
    assert not report.issues["missing"] and not report.issues["extra"]


def test_a_state_without_hashes_is_unverified_not_stale(mappings: Mappings) -> None:
    row = SourceDocument(hashes={"root": "aaa"})
    report = run_compare(mappings, row, {"root": {"chunk_hashes": ["x"]}})
    assert report.ok and report.unverified == 1


class FakeRows:
    """SourceRows over in-memory tables (keyset pages of size 2)."""

    def __init__(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        self.tables = tables

    def pages(self, table: str, key: str) -> Iterable[list[dict[str, Any]]]:
        rows = sorted(self.tables[table], key=lambda r: r[key])
        for start in range(0, len(rows), 2):
            yield rows[start : start + 2]

    def children(self, table: str, parent: str, parents: list[Any]) -> list[dict[str, Any]]:
        return [r for r in self.tables[table] if r[parent] in parents]

    def newest_children(self, table: str, key: str, parent: str, parents: list[Any]) -> list[dict[str, Any]]:
        newest: dict[Any, dict[str, Any]] = {}
        for r in self.children(table, parent, parents):
            if r[parent] not in newest or r[key] > newest[r[parent]][key]:
                newest[r[parent]] = r
        return list(newest.values())


def wiki_rows() -> FakeRows:
    page = {"page_namespace": 0, "page_restrictions": "", "page_is_redirect": 0}
    revision = {"rev_user_text": "erin@example.com"}
    return FakeRows(
        {
            "page": [{**page, "page_id": i, "page_title": f"P{i}"} for i in (1, 2, 3)],
            "revision": [
                {**revision, "rev_id": 10, "rev_page": 1, "rev_text": "old"},
                {**revision, "rev_id": 11, "rev_page": 1, "rev_text": "new"},
                {**revision, "rev_id": 12, "rev_page": 3, "rev_text": "three"},
            ],
        }
    )


def test_source_pages_hash_every_part_page_by_page(mappings: Mappings) -> None:
    wiki = next(d for s in mappings.sources if s.source == "wiki" for d in s.documents)
    pages = list(source_pages(wiki_rows(), mappings, "wiki", wiki))
    assert [sorted(page) for page in pages] == [["wiki/page/1", "wiki/page/2"], ["wiki/page/3"]]
    first = pages[0]["wiki/page/1"]
    assert first.latest == {"revision": 11} and set(first.hashes) == {"root", "revision"}
    assert pages[0]["wiki/page/2"].parts == set()
    assert first.hashes["revision"] != pages[1]["wiki/page/3"].hashes["revision"]


# -- repair ------------------------------------------------------------------------------------------


def test_repair_asks_for_exactly_the_drifted_rows(mappings: Mappings) -> None:
    report = SourceReport("wiki")
    report.issues["stale"].append(_issue("wiki/page/1"))
    report.issues["missing"].append(_issue("wiki/page/3"))
    report.issues["extra"].append(_issue("wiki/page/9"))  # no row: nothing to snapshot
    signals = repair_signals(Settings(), mappings, report, wiki_rows())
    assert signals == [
        snapshot_signal("wiki.page", "page_id", [1, 3]),
        snapshot_signal("wiki.revision", "rev_id", [11, 12]),
    ]
    assert signals[0] == {
        "data-collections": ["wiki.page"],
        "type": "incremental",
        "additional-conditions": [{"data-collection": "wiki.page", "filter": "page_id IN (1, 3)"}],
    }


def test_repair_of_a_ticket_rereads_its_comments(mappings: Mappings) -> None:
    report = SourceReport("tickets")
    report.issues["stale"].append(_issue("tickets/ticket/7"))
    signals = repair_signals(Settings(), mappings, report, FakeRows({}))
    filters = [s["additional-conditions"][0] for s in signals]
    assert filters == [
        {"data-collection": "public.tickets", "filter": "id IN (7)"},
        {"data-collection": "public.ticket_comments", "filter": "ticket_id IN (7)"},
    ]


def test_snapshot_filters_quote_text_keys_and_refuse_anything_else() -> None:
    assert sql_literal(5) == "5"
    assert sql_literal("o'brien") == "'o''brien'"
    with pytest.raises(ValueError):
        sql_literal(1.5)
    with pytest.raises(ValueError):
        snapshot_signal("public.t", "id; DROP TABLE t", [1])


def _issue(document_id: str) -> Any:
    from streams.elastic.verify_index import Issue

    return Issue(document_id, "planted")
