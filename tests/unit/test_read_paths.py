"""Parts read through joins, on the shipped MediaWiki and RT mappings, over small SQLite copies of the
applications' tables: which parts a change to each table of a chain re-reads, how stored content is
decoded, and which bad inputs become dead letters (with the reason) while the other parts go on."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import quopri
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.agents.route_changes import ChangeRouter, unwrap_routed
from streams.observability import metrics
from streams.pipeline.decode_content import UndecodableContent, mediawiki_text, message_part
from streams.pipeline.document_mapping import Mappings, load_mappings, parse_source_mapping
from streams.records import ChangeEvent, Op, PartChange, RawMessage
from streams.settings import Settings
from streams.sources.read_paths import ChainBroken, Dialect, PartFailure, PathLookup, PathReader, _Chain

ROOT = Path(__file__).resolve().parents[2]
MAX_BYTES = 4 * 1024 * 1024
WHEN = datetime(2026, 1, 2, tzinfo=UTC)

MEDIAWIKI_TABLES = """
CREATE TABLE page (page_id INTEGER PRIMARY KEY, page_namespace INTEGER, page_title BLOB, page_is_redirect INTEGER,
                   page_latest INTEGER);
CREATE TABLE page_restrictions (pr_id INTEGER PRIMARY KEY, pr_page INTEGER, pr_type TEXT, pr_level TEXT);
CREATE TABLE revision (rev_id INTEGER PRIMARY KEY, rev_page INTEGER, rev_actor INTEGER);
CREATE TABLE slots (slot_revision_id INTEGER, slot_role_id INTEGER, slot_content_id INTEGER,
                    PRIMARY KEY (slot_revision_id, slot_role_id));
CREATE TABLE slot_roles (role_id INTEGER PRIMARY KEY, role_name TEXT);
CREATE TABLE content (content_id INTEGER PRIMARY KEY, content_address TEXT);
CREATE TABLE text (old_id INTEGER PRIMARY KEY, old_text BLOB, old_flags BLOB);
CREATE TABLE actor (actor_id INTEGER PRIMARY KEY, actor_user INTEGER, actor_name BLOB);
CREATE TABLE user (user_id INTEGER PRIMARY KEY, user_name BLOB, user_real_name BLOB, user_email BLOB);
INSERT INTO slot_roles VALUES (1, 'main'), (2, 'mediainfo');
INSERT INTO user (user_id, user_name, user_email) VALUES (1, X'416c696365', 'alice@example.com'),
                                                   (2, X'426f62', 'bob@example.com');
INSERT INTO actor VALUES (1, 1, X'416c696365'), (2, 2, X'426f62');
"""

RT_TABLES = """
CREATE TABLE tickets (id INTEGER PRIMARY KEY, subject TEXT, status TEXT, type TEXT, created INTEGER, queue INTEGER,
                      effectiveid INTEGER);
-- RT sets a new ticket's effectiveid to its own id (another ticket's once it is merged into that one).
CREATE TRIGGER effective AFTER INSERT ON tickets WHEN NEW.effectiveid IS NULL
BEGIN UPDATE tickets SET effectiveid = NEW.id WHERE id = NEW.id; END;
CREATE TABLE queues (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE transactions (id INTEGER PRIMARY KEY, objecttype TEXT, objectid INTEGER, type TEXT);
CREATE TABLE attachments (id INTEGER PRIMARY KEY, transactionid INTEGER, parent INTEGER, contenttype TEXT,
                          contentencoding TEXT, content TEXT);
CREATE TABLE groups (id INTEGER PRIMARY KEY, domain TEXT, name TEXT, instance INTEGER);
CREATE TABLE groupmembers (id INTEGER PRIMARY KEY, groupid INTEGER, memberid INTEGER);
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, emailaddress TEXT, realname TEXT);
CREATE TABLE acl (id INTEGER PRIMARY KEY, principaltype TEXT, principalid INTEGER, rightname TEXT, objecttype TEXT,
                  objectid INTEGER);
INSERT INTO queues VALUES (1, 'General'), (2, 'Billing');
-- As rt-setup-database leaves them: RT's own groups, the root user's SuperUser through its ACL
-- equivalence group, and the stack's staff rights on General for Privileged.
INSERT INTO groups VALUES (3, 'SystemInternal', 'Everyone', 0), (4, 'SystemInternal', 'Privileged', 0),
                          (15, 'ACLEquivalence', 'UserEquiv', 14), (19, 'RT::Queue-Role', 'Requestor', 1);
INSERT INTO acl VALUES (1, 'Group', 15, 'SuperUser', 'RT::System', 1), (2, 'Group', 4, 'ShowTicket', 'RT::Queue', 1),
                       (3, 'Group', 4, 'SeeQueue', 'RT::Queue', 1), (4, 'Group', 19, 'ShowTicket', 'RT::Queue', 1);
INSERT INTO users (id, name, emailaddress) VALUES (10, 'ann', 'ann@example.com'), (11, 'agent', 'agent@streams.local'),
                         (12, 'carol', 'carol@example.com');
"""


# A ticket row as RT inserts it (the trigger above sets its effectiveid).
INSERT_TICKET = "INSERT INTO tickets (id, subject, status, type, created, queue) VALUES "


class Database:
    """A SQLite copy of an application's tables, queried the way SourceConnection queries a source."""

    def __init__(self, schema: str) -> None:
        self.conn = sqlite3.connect(":memory:", check_same_thread=False)  # read off the event loop, as a source is
        self.conn.executescript(schema)
        self.statements: list[str] = []

    def __call__(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        self.statements.append(sql)
        cursor = self.conn.execute(sql.replace("%s", "?"), tuple(params))
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def run(self, sql: str, *params: Any) -> None:
        self.conn.execute(sql, params)


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings(ROOT / "connectors", applications=("mediawiki", "request-tracker"))


def reader(mappings: Mappings, source: str, db: Database, max_bytes: int = MAX_BYTES) -> PathReader:
    mapping = next(m for m in mappings.sources if m.source == source)
    return PathReader(mapping, Dialect("sqlite"), db, max_bytes, mappings)


_version = iter(range(100, 10_000))


def event(
    source: str, table: str, key: dict[str, Any], row: dict[str, Any] | None = None, op: Op = Op.CREATE
) -> ChangeEvent:
    image = {**key, **(row or {})}
    return ChangeEvent(
        source=source,
        table=table,
        op=op,
        key=key,
        before=image if op is Op.DELETE else None,
        after=None if op is Op.DELETE else image,
        version=next(_version),
        commit_ts=WHEN,
    )


def parts(outcomes: list[Any]) -> dict[tuple[str, str], PartChange]:
    return {(o.document_id, o.part_id): o for o in outcomes if isinstance(o, PartChange)}


def failures(outcomes: list[Any]) -> list[PartFailure]:
    return [o for o in outcomes if isinstance(o, PartFailure)]


def reread_part_ids(outcomes: list[Any]) -> set[str]:
    """The ids of the parts a change re-read, every one of them read without failure."""
    assert not failures(outcomes)
    return {part_id for _, part_id in parts(outcomes)}


def delete_and_trigger(mappings: Mappings, source: str, db: Database, table: str, row_id: int) -> list[Any]:
    """Delete one row by its id; what its delete event, carrying the row's before image, re-reads."""
    before = db(f'SELECT * FROM "{table}" WHERE id = %s', [row_id])[0]
    db.run(f'DELETE FROM "{table}" WHERE id = ?', row_id)
    return reader(mappings, source, db).triggered(event(source, table, {"id": row_id}, before, op=Op.DELETE))


# -- MediaWiki ---------------------------------------------------------------------------------------


def wiki_page(
    db: Database, page: int = 5, text: bytes = b"== Lag ==\nWatch the standby.", flags: bytes = b"utf-8"
) -> None:
    """A page with one revision by Alice and a second by Bob, as MediaWiki's edit writes them."""
    db.run("INSERT INTO text VALUES (?, ?, ?)", page * 10 + 1, b"first draft", b"utf-8")
    db.run("INSERT INTO text VALUES (?, ?, ?)", page * 10 + 2, text, flags)
    for n, actor in ((1, 1), (2, 2)):
        rev = page * 10 + n
        db.run("INSERT INTO content VALUES (?, ?)", rev, f"tt:{rev}")
        db.run("INSERT INTO revision VALUES (?, ?, ?)", rev, page, actor)
        db.run("INSERT INTO slots VALUES (?, 1, ?)", rev, rev)
    db.run("INSERT INTO page VALUES (?, 0, ?, 0, ?)", page, f"Replication_{page}".encode(), page * 10 + 2)


def test_a_page_is_read_through_its_revision_slots_content_and_text(mappings: Mappings) -> None:
    db = Database(MEDIAWIKI_TABLES)
    wiki_page(db)
    found = parts(reader(mappings, "mediawiki", db).triggered(event("mediawiki", "page", {"page_id": 5})))
    root, text, authors = (found[("mediawiki/page/5", p)] for p in ("root", "text", "authors"))
    assert root.title == "Replication_5" and root.groups == ("namespace:0",)
    assert root.metadata == {"page_namespace": 0, "page_is_redirect": 0}
    assert (text.text, text.text_format) == ("== Lag ==\nWatch the standby.", "wikitext")
    assert authors.subjects == {
        "email:alice@example.com",
        "email:bob@example.com",
        "mediawiki_user:Alice",
        "mediawiki_user:Bob",
    }
    assert {change.version for change in found.values()} == {root.version}  # the trigger's position
    assert all(change.content_hash for change in found.values())


def test_identifiers_are_quoted_per_dialect_and_the_text_address_keeps_its_prefix(mappings: Mappings) -> None:
    mapping = next(m for m in mappings.sources if m.source == "mediawiki")
    document = mapping.documents[0]
    text = next(p for p in document.parts if p.name == "text")
    for dialect, quoted, join in (
        ("mariadb", "LEFT JOIN `text` h4", "CONCAT('tt:', h4.`old_id`) = h3.`content_address`"),
        ("postgres", 'LEFT JOIN "text" h4', """('tt:' || h4."old_id") = h3."content_address\""""),
    ):
        sql, params = _Chain(Dialect(dialect), document, text.path).read_sql([("page", "page_id")], [5], None, 0)  # type: ignore[arg-type]
        assert quoted in sql and join in sql
        assert params == ["main", 5]  # the where filter's value, then the root key: never inlined


@pytest.mark.parametrize(
    ("table", "key", "expected"),
    [
        ("page", {"page_id": 5}, {"root", "text", "authors"}),
        ("revision", {"rev_id": 52}, {"text", "authors"}),
        ("revision", {"rev_id": 51}, {"authors"}),  # an older revision: not the page's text
        ("slots", {"slot_revision_id": 52, "slot_role_id": 1}, {"text"}),
        ("slot_roles", {"role_id": 1}, {"text"}),
        ("content", {"content_id": 52}, {"text"}),
        ("text", {"old_id": 52}, {"text"}),
        ("text", {"old_id": 51}, set()),  # the first revision's text: no page shows it any more
        ("actor", {"actor_id": 2}, {"authors"}),
        ("user", {"user_id": 1}, {"authors", "root"}),  # the page's authors, and the user's identity record
        ("page_restrictions", {"pr_id": 1}, {"root"}),
    ],
)
def test_a_change_to_each_table_of_a_chain_rereads_the_parts_it_is_on(
    mappings: Mappings, table: str, key: dict[str, Any], expected: set[str]
) -> None:
    db = Database(MEDIAWIKI_TABLES)
    wiki_page(db)
    db.run("INSERT INTO page_restrictions VALUES (1, 5, 'read', 'staff')")
    found = reader(mappings, "mediawiki", db).triggered(event("mediawiki", table, key))
    assert reread_part_ids(found) == expected
    if table == "page_restrictions":
        assert parts(found)[("mediawiki/page/5", "root")].groups == ("mediawiki-group:staff",)


def test_gzip_text_is_raw_deflate() -> None:
    deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    stored = deflate.compress("Grüße from the standby".encode()) + deflate.flush()
    assert mediawiki_text(stored, b"utf-8,gzip", MAX_BYTES) == "Grüße from the standby"


@pytest.mark.parametrize(
    ("flags", "stored", "reason"),
    [
        (b"utf-8,external", b"DB://cluster1/42", "external store ('DB://cluster1/42')"),
        (b"utf-8,bzip2", b"...", "bzip2"),
        (b"object", b"O:15:...", "object"),
        (b"gzip", b"not deflate", "not a deflate stream"),
    ],
)
def test_a_text_that_cannot_be_read_is_a_dead_letter_and_the_other_parts_go_on(
    mappings: Mappings, flags: bytes, stored: bytes, reason: str
) -> None:
    db = Database(MEDIAWIKI_TABLES)
    wiki_page(db, text=stored, flags=flags)
    found = reader(mappings, "mediawiki", db).triggered(event("mediawiki", "page", {"page_id": 5}))
    (failure,) = failures(found)
    assert (failure.document_id, failure.part_id) == ("mediawiki/page/5", "text")
    assert isinstance(failure.error, UndecodableContent) and reason in str(failure.error)
    assert {part_id for _, part_id in parts(found)} == {"root", "authors"}


def test_a_revision_chain_to_a_missing_row_is_a_dead_letter_naming_the_row(mappings: Mappings) -> None:
    db = Database(MEDIAWIKI_TABLES)
    wiki_page(db)
    db.run("DELETE FROM text WHERE old_id = 52")
    found = reader(mappings, "mediawiki", db).triggered(event("mediawiki", "page", {"page_id": 5}))
    (failure,) = failures(found)
    assert isinstance(failure.error, ChainBroken)
    assert "no text row where old_id = 'tt:52' (from content.content_address)" in str(failure.error)


def test_a_page_that_points_to_no_revision_yet_waits(mappings: Mappings) -> None:
    db = Database(MEDIAWIKI_TABLES)
    wiki_page(db)
    db.run("UPDATE page SET page_latest = 0")
    found = reader(mappings, "mediawiki", db).triggered(event("mediawiki", "page", {"page_id": 5}))
    assert reread_part_ids(found) == {"root", "authors"}


def test_a_deleted_page_deletes_its_document_without_reading(mappings: Mappings) -> None:
    db = Database(MEDIAWIKI_TABLES)
    found = reader(mappings, "mediawiki", db).triggered(event("mediawiki", "page", {"page_id": 5}, op=Op.DELETE))
    assert [(o.part_id, o.role, o.table, o.deleted) for o in found] == [("root", "root", "page", True)]
    assert db.statements == []


# -- Request Tracker -----------------------------------------------------------------------------------


def rt_ticket(db: Database, ticket: int = 7) -> None:
    db.run(
        INSERT_TICKET + "(?, 'Replication lag', 'open', 'ticket', 0, 1)",
        ticket,
    )
    db.run("INSERT INTO transactions VALUES (70, 'RT::Ticket', ?, 'Create')", ticket)
    db.run("INSERT INTO transactions VALUES (71, 'RT::Ticket', ?, 'Correspond')", ticket)
    db.run("INSERT INTO transactions VALUES (72, 'RT::Ticket', ?, 'Comment')", ticket)
    db.run("INSERT INTO transactions VALUES (73, 'RT::Ticket', ?, 'Status')", ticket)
    db.run("INSERT INTO attachments VALUES (700, 70, 0, 'text/plain', 'none', 'Is it still behind?')")
    db.run("INSERT INTO attachments VALUES (710, 71, 0, 'multipart/mixed', 'none', NULL)")
    reply = "Gr=C3=BC=C3=9Fe: the standby caught up.\n\n> Is it still behind?\n"
    db.run("INSERT INTO attachments VALUES (711, 71, 710, 'text/plain', 'quoted-printable', ?)", reply)
    binary = base64.b64encode(b"\x00\x01\xff waldump").decode()
    db.run("INSERT INTO attachments VALUES (712, 71, 710, 'application/octet-stream', 'base64', ?)", binary)
    html = base64.b64encode(b"<p>internal: <b>checked</b></p>").decode()
    db.run("INSERT INTO attachments VALUES (720, 72, 0, 'text/html', 'base64', ?)", html)
    for group, name, member in ((80, "Requestor", 10), (81, "Owner", 11), (82, "Cc", None)):
        db.run("INSERT INTO groups VALUES (?, 'RT::Ticket-Role', ?, ?)", group, name, ticket)
        if member is not None:
            db.run("INSERT INTO groupmembers VALUES (?, ?, ?)", group * 10, group, member)


def test_a_ticket_is_read_with_its_messages_people_and_queue(mappings: Mappings) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    skipped = metrics.PARTS_SKIPPED.labels(source="rt")._value.get()
    found = parts(reader(mappings, "rt", db).triggered(event("rt", "tickets", {"id": 7})))
    assert found[("rt/ticket/7", "root")].groups == ("queue:General", "rt-group:Privileged")
    assert found[("rt/ticket/7", "attachments/711")].text == "Grüße: the standby caught up.\n\n> Is it still behind?\n"
    assert found[("rt/ticket/7", "attachments/711")].text_format == "email"
    html = found[("rt/ticket/7", "attachments/720")]
    assert (html.text, html.text_format) == ("<p>internal: <b>checked</b></p>", "email_html")
    assert ("rt/ticket/7", "attachments/712") not in found  # the binary attachment: skipped, counted
    assert ("rt/ticket/7", "attachments/710") not in found  # its multipart container holds no text
    assert metrics.PARTS_SKIPPED.labels(source="rt")._value.get() == skipped + 1
    # The requestor in a part the ticket is about; the owner (and Cc) in one it is not.
    requestors, people = found[("rt/ticket/7", "requestors")], found[("rt/ticket/7", "people")]
    assert (requestors.subjects, requestors.about) == ({"email:ann@example.com", "rt_user:ann"}, True)
    assert (people.subjects, people.about) == ({"email:agent@streams.local", "rt_user:agent"}, False)


def test_a_cc_added_later_rereads_the_people_of_its_ticket_only(mappings: Mappings) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    db.run("INSERT INTO groupmembers VALUES (820, 82, 12)")
    found = parts(reader(mappings, "rt", db).triggered(event("rt", "groupmembers", {"id": 820})))
    assert list(found) == [("rt/ticket/7", "people")]
    assert "email:carol@example.com" in found[("rt/ticket/7", "people")].subjects


@pytest.mark.parametrize(
    ("table", "key", "expected"),
    [
        ("attachments", {"id": 711}, {"attachments/711"}),  # one message part: only itself
        ("transactions", {"id": 71}, {"attachments/711"}),
        ("transactions", {"id": 73}, set()),  # a status change: not a message
        ("queues", {"id": 1}, {"root"}),
        ("users", {"id": 10}, {"requestors", "root"}),  # the requestor, and the user's identity record
        ("users", {"id": 11}, {"people", "root"}),  # the owner
        ("groups", {"id": 80}, {"requestors"}),
        ("groups", {"id": 81}, {"people"}),
    ],
)
def test_a_change_to_each_rt_table_rereads_the_parts_it_is_on(
    mappings: Mappings, table: str, key: dict[str, Any], expected: set[str]
) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    row = db(f'SELECT * FROM "{table}" WHERE id = %s', [key["id"]])[0]
    assert reread_part_ids(reader(mappings, "rt", db).triggered(event("rt", table, key, row))) == expected


def test_a_deleted_attachment_deletes_its_part(mappings: Mappings) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    found = delete_and_trigger(mappings, "rt", db, "attachments", 711)
    assert [(o.document_id, o.part_id, o.role, o.table, o.deleted) for o in found] == [
        ("rt/ticket/7", "attachments/711", "child", "attachments", True)
    ]


def rt_without_unless(mappings: Mappings) -> Mappings:
    """The shipped mappings with RT's `unless` rule taken out: the check below must fail without it."""
    rt = next(m for m in mappings.sources if m.source == "rt")
    ticket = rt.documents[0].model_copy(update={"unless": {}})
    return Mappings((rt.model_copy(update={"documents": (ticket, *rt.documents[1:])}),))


@pytest.mark.parametrize("rule", ["shipped", "taken out"])
def test_a_ticket_deleted_in_rt_leaves_the_index_and_comes_back_whole_when_reopened(
    mappings: Mappings, rule: str
) -> None:
    """RT deletes a ticket by its status: the root is read as deleted and no part of it is read, even
    when one of its rows changes; given another status, the ticket is read again with every part."""
    used = mappings if rule == "shipped" else rt_without_unless(mappings)
    db = Database(RT_TABLES)
    rt_ticket(db)
    whole = reread_part_ids(reader(used, "rt", db).triggered(event("rt", "tickets", {"id": 7})))
    db.run("UPDATE tickets SET status = 'deleted' WHERE id = 7")
    deleted = parts(reader(used, "rt", db).triggered(event("rt", "tickets", {"id": 7})))
    reply = reader(used, "rt", db).triggered(event("rt", "attachments", {"id": 711}))
    if rule == "taken out":  # without the rule a deleted ticket is indexed like any other
        assert set(p for _, p in deleted) == whole and not deleted[("rt/ticket/7", "root")].deleted
        assert reread_part_ids(reply) == {"attachments/711"}
        return
    assert list(deleted) == [("rt/ticket/7", "root")] and deleted[("rt/ticket/7", "root")].deleted
    assert reply == []  # a reply to a deleted ticket: nothing of it is read
    db.run("UPDATE tickets SET status = 'open' WHERE id = 7")
    reopened = parts(reader(used, "rt", db).triggered(event("rt", "tickets", {"id": 7})))
    assert set(p for _, p in reopened) == whole and not reopened[("rt/ticket/7", "root")].deleted


def merge_ticket(db: Database, ticket: int = 8, into: int = 7) -> ChangeEvent:
    """Ticket `ticket` (with a message of its own) merged into `into` as RT merges: its effectiveid set
    to the other's id. The update's event, with both images (RT's tables have REPLICA IDENTITY FULL)."""
    db.run(
        INSERT_TICKET + "(?, 'Lag again', 'new', 'ticket', 0, 1)",
        ticket,
    )
    db.run("INSERT INTO transactions VALUES (80, 'RT::Ticket', ?, 'Create')", ticket)
    db.run("INSERT INTO attachments VALUES (800, 80, 0, 'text/plain', 'none', 'The standby is behind again.')")
    before = db('SELECT * FROM "tickets" WHERE id = %s', [ticket])[0]
    db.run("UPDATE tickets SET effectiveid = ? WHERE id = ?", into, ticket)
    after = db('SELECT * FROM "tickets" WHERE id = %s', [ticket])[0]
    return dataclasses.replace(event("rt", "tickets", {"id": ticket}, after, op=Op.UPDATE), before=before)


@pytest.mark.parametrize("rule", ["shipped", "taken out"])
def test_a_ticket_merged_into_another_becomes_part_of_it(mappings: Mappings, rule: str) -> None:
    """RT merges ticket 8 into 7: 8 is no document of its own any more, and its message is read as a part
    of 7, as RT shows it there. Without the mapping's `same` rule 8 would stay a document."""
    rt = next(m for m in mappings.sources if m.source == "rt")
    used = mappings
    if rule == "taken out":
        ticket = rt.documents[0].model_copy(update={"same": {}})
        used = Mappings((rt.model_copy(update={"documents": (ticket, *rt.documents[1:])}),))
    db = Database(RT_TABLES)
    rt_ticket(db)
    merged = merge_ticket(db)
    found = parts(reader(used, "rt", db).triggered(merged))
    if rule == "taken out":
        assert not found[("rt/ticket/8", "root")].deleted
        return
    assert found[("rt/ticket/8", "root")].deleted
    assert found[("rt/ticket/7", "attachments/800")].text == "The standby is behind again."
    assert {document_id for document_id, _ in found} == {"rt/ticket/7", "rt/ticket/8"}
    # Read whole, ticket 7 has both tickets' messages; 8 is read as no document.
    whole = parts(reader(used, "rt", db).triggered(event("rt", "tickets", {"id": 7})))
    assert {"attachments/700", "attachments/711", "attachments/800"} <= {p for d, p in whole if d == "rt/ticket/7"}
    assert parts(reader(used, "rt", db).triggered(event("rt", "tickets", {"id": 8})))[("rt/ticket/8", "root")].deleted
    # A later reply stored on the merged ticket's transaction is read into 7 too.
    db.run("INSERT INTO attachments VALUES (801, 80, 0, 'text/plain', 'none', 'Still behind.')")
    later = parts(reader(used, "rt", db).triggered(event("rt", "attachments", {"id": 801})))
    assert list(later) == [("rt/ticket/7", "attachments/801")]


def test_verify_expects_a_deleted_ticket_out_of_the_index(mappings: Mappings) -> None:
    from streams.verify import path_pages

    db = Database(RT_TABLES)
    rt_ticket(db)
    db.run(INSERT_TICKET + "(8, 'Duplicate of 7', 'deleted', 'ticket', 0, 1)")
    document = next(m for m in mappings.sources if m.source == "rt").documents[0]
    (page,) = list(path_pages(Rows(db), mappings, "rt", document))
    assert page["rt/ticket/8"] is None and page["rt/ticket/7"] is not None
    # Still searchable in the index: the check names it (and, once it is gone, is clean).
    from streams.elastic.verify_index import IndexedDocument, compare

    held = {document_id: found for document_id, found in page.items() if found is not None}
    stale = IndexedDocument({"root": {"version": 1}, "parts": {}}, {"*": 2})
    report = compare("rt", {document.kind: document}, held, {"rt/ticket/8": stale})
    assert [issue.document_id for issue in report.issues["extra"]] == ["rt/ticket/8"]
    gone = IndexedDocument({"root": {"version": 2, "deleted": True}, "parts": {}})
    assert not compare("rt", {document.kind: document}, held, {"rt/ticket/8": gone}).issues["extra"]


def test_a_role_member_removed_rereads_the_people_by_the_before_images_join_value(mappings: Mappings) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    found = delete_and_trigger(mappings, "rt", db, "groupmembers", 800)
    (requestors,) = found
    assert isinstance(requestors, PartChange) and requestors.part_id == "requestors"
    assert requestors.deleted and requestors.subjects == frozenset()  # the only requestor is gone


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ((713, 71, 710, "text/plain", "base64", base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00").decode()), "binary"),
        (
            (713, 71, 999, "text/plain", "none", "orphan"),
            "broken MIME tree: attachments/713's parent 999 does not exist",
        ),
        ((713, 71, 700, "text/plain", "none", "nested"), "parent 700 is 'text/plain', not a multipart container"),
        ((713, 71, 710, "text/plain", "base64", "QUFB" * (30 * 1024 * 1024 // 4)), "over the size guard"),
        ((713, 71, 710, "text/plain", "x-uuencode", "begin 644"), "unknown content encoding 'x-uuencode'"),
    ],
)
def test_a_bad_message_part_is_a_dead_letter_and_the_other_parts_go_on(
    mappings: Mappings, row: tuple[Any, ...], reason: str
) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    db.run("INSERT INTO attachments VALUES (?, ?, ?, ?, ?, ?)", *row)
    found = reader(mappings, "rt", db).triggered(event("rt", "tickets", {"id": 7}))
    (failure,) = failures(found)
    assert failure.part_id == "attachments/713" and reason in str(failure.error)
    assert ("rt/ticket/7", "attachments/711") in parts(found)


def test_message_parts_decode_quoted_printable_and_skip_other_types() -> None:
    assert message_part(quopri.encodestring("café".encode()), "quoted-printable", "text/plain", None, 100) == "café"
    assert message_part("x", "none", "image/png", None, 100).content_type == "image/png"  # type: ignore[union-attr]
    with pytest.raises(UndecodableContent, match="unknown charset 'no-such-charset'"):
        message_part(b"\xff", "none", "text/plain", "no-such-charset", 100)
    with pytest.raises(UndecodableContent, match="over the size guard"):
        message_part("a" * 101, "none", "text/plain", None, 100)


# -- RT: who may see a ticket, from RT's ACL ---------------------------------------------------------


def rt_groups(mappings: Mappings, db: Database, ticket: int = 7) -> tuple[str, ...] | None:
    found = parts(reader(mappings, "rt", db).triggered(event("rt", "tickets", {"id": ticket})))
    return found[(f"rt/ticket/{ticket}", "root")].groups


def test_a_ticket_is_seen_by_the_groups_holding_show_ticket_on_its_queue_or_the_system(mappings: Mappings) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    db.run("INSERT INTO groups VALUES (30, 'UserDefined', 'Payroll', 0), (31, 'UserDefined', 'Auditors', 0)")
    db.run("INSERT INTO groups VALUES (32, 'UserDefined', 'Admins', 0), (33, 'UserDefined', 'Billing staff', 0)")
    db.run("INSERT INTO acl VALUES (10, 'Group', 30, 'ShowTicket', 'RT::Queue', 1)")
    db.run("INSERT INTO acl VALUES (11, 'Group', 31, 'ShowTicket', 'RT::System', 1)")
    db.run("INSERT INTO acl VALUES (12, 'Group', 32, 'SuperUser', 'RT::System', 1)")
    db.run("INSERT INTO acl VALUES (13, 'Group', 33, 'ShowTicket', 'RT::Queue', 2)")  # another queue's
    db.run("INSERT INTO acl VALUES (14, 'Group', 33, 'ModifyTicket', 'RT::Queue', 1)")  # not a right to see
    # Neither the queue's Requestor role (row 4) nor the root user's own SuperUser (row 1) is a group.
    assert rt_groups(mappings, db) == (
        "queue:General",
        "rt-group:Privileged",
        "rt-group:Payroll",
        "rt-group:Auditors",
        "rt-group:Admins",
    )


def test_a_right_granted_on_a_queue_rereads_only_that_queues_tickets(mappings: Mappings) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    db.run(INSERT_TICKET + "(8, 'Invoice', 'open', 'ticket', 0, 2)")
    db.run("INSERT INTO groups VALUES (30, 'UserDefined', 'Payroll', 0)")
    db.run("INSERT INTO acl VALUES (10, 'Group', 30, 'ShowTicket', 'RT::Queue', 2)")
    row = db('SELECT * FROM "acl" WHERE id = 10', [])[0]
    found = parts(reader(mappings, "rt", db).triggered(event("rt", "acl", {"id": 10}, row)))
    assert list(found) == [("rt/ticket/8", "root")]
    assert found[("rt/ticket/8", "root")].groups == ("queue:Billing", "rt-group:Payroll")


def test_a_right_granted_on_the_system_rereads_every_ticket_in_batches(
    mappings: Mappings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.sources import read_paths

    monkeypatch.setattr(read_paths, "READ_BATCH", 2)
    db = Database(RT_TABLES)
    rt_ticket(db)
    for ticket in (8, 9, 10, 11):  # in Billing, whose queue grants no one anything: they join no queue right
        db.run(
            INSERT_TICKET + "(?, 'Invoice', 'open', 'ticket', 0, 2)",
            ticket,
        )
    db.run("INSERT INTO groups VALUES (31, 'UserDefined', 'Auditors', 0)")
    db.run("INSERT INTO acl VALUES (11, 'Group', 31, 'ShowTicket', 'RT::System', 1)")
    row = db('SELECT * FROM "acl" WHERE id = 11', [])[0]
    db.statements.clear()
    found = parts(reader(mappings, "rt", db).triggered(event("rt", "acl", {"id": 11}, row)))
    assert sorted(found) == [(f"rt/ticket/{t}", "root") for t in (10, 11, 7, 8, 9)]
    assert found[("rt/ticket/9", "root")].groups == ("queue:Billing", "rt-group:Auditors")
    reads = [sql for sql in db.statements if sql.startswith("SELECT") and "DISTINCT" not in sql]
    assert len(reads) == 3  # five tickets, two to a read


def test_a_right_that_is_not_show_ticket_rereads_nothing(mappings: Mappings) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    row = db('SELECT * FROM "acl" WHERE id = 3', [])[0]  # Privileged's SeeQueue on General
    assert reader(mappings, "rt", db).triggered(event("rt", "acl", {"id": 3}, row)) == []


@pytest.mark.parametrize(
    ("grant", "other_tickets"),
    [((10, "RT::Queue", 1), []), ((11, "RT::System", 1), [8])],
    ids=["queue", "system"],
)
def test_a_revoked_right_rereads_the_tickets_it_let_the_group_see(
    mappings: Mappings, grant: tuple[int, str, int], other_tickets: list[int]
) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    db.run(INSERT_TICKET + "(8, 'Invoice', 'open', 'ticket', 0, 2)")
    db.run("INSERT INTO groups VALUES (30, 'UserDefined', 'Payroll', 0)")
    acl, objecttype, objectid = grant
    db.run("INSERT INTO acl VALUES (?, 'Group', 30, 'ShowTicket', ?, ?)", acl, objecttype, objectid)
    assert "rt-group:Payroll" in (rt_groups(mappings, db) or ())
    found = parts(delete_and_trigger(mappings, "rt", db, "acl", acl))
    assert sorted(found) == [(f"rt/ticket/{t}", "root") for t in (7, *other_tickets)]
    assert found[("rt/ticket/7", "root")].groups == ("queue:General", "rt-group:Privileged")


def test_a_revoke_on_another_object_than_the_system_rereads_nothing(mappings: Mappings) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    # A right on an object other than RT::System's (say a class of articles, objectid 3): no ticket joins it.
    before = {"id": 20, "principaltype": "Group", "principalid": 4, "rightname": "ShowTicket"}
    before |= {"objecttype": "RT::System", "objectid": 3}
    assert reader(mappings, "rt", db).triggered(event("rt", "acl", {"id": 20}, before, op=Op.DELETE)) == []


def test_a_walk_back_joins_only_the_hops_the_changed_row_depends_on(mappings: Mappings) -> None:
    rt = next(m for m in mappings.sources if m.source == "rt")
    tickets = rt.documents[0]
    chain = _Chain(Dialect("postgres"), tickets, tickets.path)
    system_viewers = next(i for i, hop in enumerate(tickets.path) if hop.ref == "system_viewers")
    sql, params = chain.walk_back_sql(system_viewers, {"id": 31})
    assert '"queues"' not in sql and sql.count('"acl"') == 1 and params[0] == 1  # the constant join's value
    queue_viewers = next(i for i, hop in enumerate(tickets.path) if hop.ref == "queue_viewers")
    sql, _ = chain.walk_back_deleted_sql(queue_viewers, 30)
    assert '"queues"' in sql and sql.count('"acl"') == 1 and '"groups"' not in sql


# -- the mapping language's checks ---------------------------------------------------------------------


def test_a_hop_must_join_to_the_root_or_an_earlier_hop() -> None:
    from streams.errors import MappingError

    raw = {
        "source": "s",
        "documents": [
            {
                "table": "a",
                "kind": "a",
                "key": "id",
                "parts": [
                    {
                        "name": "p",
                        "mode": "one",
                        "path": [
                            {"table": "b", "join": {"column": "id", "to": "c.b_id"}},
                            {"table": "c", "join": {"column": "id", "to": "a.c_id"}},
                        ],
                    }
                ],
            }
        ],
    }
    with pytest.raises(MappingError, match=r"hop b: joins to c.b_id, but c is not the root or an earlier hop"):
        parse_source_mapping(raw)


def test_where_and_unless_need_a_document_read_through_paths() -> None:
    from streams.errors import MappingError

    raw = {"source": "s", "documents": [{"table": "a", "kind": "a", "key": "id", "unless": {"status": "deleted"}}]}
    with pytest.raises(MappingError, match="where, unless and same need a document read through paths"):
        parse_source_mapping(raw)


def test_application_sources_count_only_where_enabled() -> None:
    assert "mediawiki" not in load_mappings(ROOT / "connectors").names
    assert "rt" in load_mappings(ROOT / "connectors", configured=("rt",)).names
    assert Settings(stack_apps=("request-tracker",)).dsn("rt").endswith("/rt")


# -- the router: a trigger becomes routed part changes and dead letters ---------------------------------


def debezium(topic: str, key: dict[str, Any], after: dict[str, Any], offset: int) -> RawMessage:
    source = {
        "connector": "postgresql",
        "name": "rt",
        "db": "rt",
        "schema": "public",
        "table": topic.split(".")[-1],
        "lsn": 1000 + offset,
        "snapshot": "false",
        "ts_ms": 1795217165000,
    }
    value = {"before": None, "after": after, "source": source, "op": "c", "ts_ms": 1795217165157}
    return RawMessage(topic, 0, offset, json.dumps(key).encode(), json.dumps(value).encode())


def test_the_router_forwards_each_part_read_and_dead_letters_each_failure(mappings: Mappings) -> None:
    db = Database(RT_TABLES)
    rt_ticket(db)
    db.run("INSERT INTO attachments VALUES (713, 71, 999, 'text/plain', 'none', 'orphan')")
    forwarded: list[tuple[bytes, bytes]] = []
    dead: list[dict[str, object]] = []

    async def forward(key: bytes, value: bytes, partition: int | None) -> Any:
        forwarded.append((key, value))

        async def ack() -> None:
            return None

        return ack()

    async def dead_letter(origin: Any, record: dict[str, object]) -> None:
        dead.append(record)

    lookup = PathLookup({"rt": reader(mappings, "rt", db)})
    router = ChangeRouter(mappings, forward, dead_letter, paths=lookup)
    ticket = debezium("rt.public.tickets", {"id": 7}, {"id": 7, "subject": "x", "queue": 1}, offset=3)
    asyncio.run(router.route([ticket]))
    assert {key for key, _ in forwarded} == {b"rt/ticket/7"}
    routed = [unwrap_routed(value, "t", 0, 0, router.decoder) for _, value in forwarded]
    assert {r.change.part_id for r in routed} == {
        "root",
        "attachments/700",
        "attachments/711",
        "attachments/720",
        "requestors",
        "people",
    }  # type: ignore[union-attr]
    assert {r.change.version for r in routed} == {1003}  # type: ignore[union-attr]
    assert [record["error"] for record in dead] == ["broken MIME tree: attachments/713's parent 999 does not exist"]


# -- verify reads through the same function ----------------------------------------------------------


class Rows:
    """verify's SourceRows over the SQLite copy: root pages, and the raw query the paths read through."""

    mariadb = False
    max_bytes = MAX_BYTES

    def __init__(self, db: Database) -> None:
        self.query = db

    def pages(self, table: str, key: str) -> Iterator[list[dict[str, Any]]]:
        yield self.query(f'SELECT * FROM "{table}" ORDER BY "{key}"', [])


def test_verify_hashes_a_path_document_as_the_worker_does(mappings: Mappings) -> None:
    from streams.verify import path_pages

    db = Database(RT_TABLES)
    rt_ticket(db)
    db.run("INSERT INTO attachments VALUES (713, 71, 999, 'text/plain', 'none', 'orphan')")
    worker = parts(reader(mappings, "rt", db).triggered(event("rt", "tickets", {"id": 7})))
    document = next(m for m in mappings.sources if m.source == "rt").documents[0]
    (page,) = list(path_pages(Rows(db), mappings, "rt", document))
    expected = page["rt/ticket/7"]
    assert {part_id: h for part_id, h in expected.hashes.items() if not h.startswith("unmappable")} == {
        part_id: change.content_hash for (_, part_id), change in worker.items()
    }
    assert expected.hashes["attachments/713"].startswith("unmappable (UndecodableContent: broken MIME tree")
    assert expected.parts == {
        "attachments/700",
        "attachments/711",
        "attachments/713",
        "attachments/720",
        "requestors",
        "people",
    }


def test_a_broken_source_connection_is_retried_on_a_new_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from streams.errors import is_transient
    from streams.sources import connect
    from streams.sources.read_paths import SourceConnection, SourceReadError

    opened: list[FakeConnection] = []

    class FakeConnection:
        autocommit = False

        def __init__(self, broken: bool) -> None:
            self.broken, self.closed = broken, False

        def cursor(self, row_factory: Any = None) -> Any:
            connection = self

            class Cursor:
                def __enter__(self) -> Any:
                    return self

                def __exit__(self, *_: object) -> None:
                    return None

                def execute(self, sql: bytes, params: tuple[Any, ...]) -> Any:
                    if connection.broken:
                        raise psycopg.OperationalError("server closed the connection unexpectedly")
                    return self

                def fetchall(self) -> list[dict[str, Any]]:
                    return [{"c0": 7}]

            return Cursor()

        def close(self) -> None:
            self.closed = True

    def fake_connect(dsn: str, *, name: str) -> FakeConnection:
        opened.append(FakeConnection(broken=not opened))
        return opened[-1]

    monkeypatch.setattr(connect, "connect_postgres", fake_connect)
    query = SourceConnection("postgresql://streams@127.0.0.1:1/rt", "rt")
    with pytest.raises(SourceReadError) as failed:
        query("SELECT 1", [])
    assert is_transient(failed.value) and opened[0].closed  # retried by the caller, never dead-lettered
    assert query("SELECT 1", []) == [{"c0": 7}] and len(opened) == 2


def test_an_account_is_an_identity_record_of_its_address_user_name_and_real_name(mappings: Mappings) -> None:
    db = Database(MEDIAWIKI_TABLES)
    db.run("UPDATE user SET user_real_name = X'416c6963652042c3a86c6c' WHERE user_id = 1")  # Alice Bèll
    found = parts(reader(mappings, "mediawiki", db).triggered(event("mediawiki", "user", {"user_id": 1})))
    record = found[("mediawiki/user/1", "root")]
    assert record.identity
    assert record.subjects == {"email:alice@example.com", "mediawiki_user:Alice", "name:alice bell"}
    assert record.mentions == (("name", "Alice Bèll"),)
    assert record.text == ""  # nothing of its own to search


def test_an_rt_user_is_an_identity_record(mappings: Mappings) -> None:
    db = Database(RT_TABLES)
    db.run("UPDATE users SET realname = 'Ann Example' WHERE id = 10")
    found = parts(reader(mappings, "rt", db).triggered(event("rt", "users", {"id": 10})))
    record = found[("rt/user/10", "root")]
    assert record.identity and record.text == ""
    assert record.subjects == {"email:ann@example.com", "rt_user:ann", "name:ann example"}
    assert record.mentions == (("name", "Ann Example"),)


# -- Tryton ------------------------------------------------------------------------------------------

TRYTON_TABLES = """
CREATE TABLE party_party (id INTEGER PRIMARY KEY, name TEXT, code TEXT, active INTEGER);
CREATE TABLE party_contact_mechanism (id INTEGER PRIMARY KEY, party INTEGER, type TEXT, value TEXT,
                                      active INTEGER);
CREATE TABLE sale_opportunity (id INTEGER PRIMARY KEY, party INTEGER, description TEXT, comment TEXT,
                               number TEXT, state TEXT, start_date TEXT, end_date TEXT);
CREATE TABLE ir_note (id INTEGER PRIMARY KEY, resource TEXT, message TEXT);
CREATE TABLE ir_model (id INTEGER PRIMARY KEY, model TEXT);
CREATE TABLE ir_model_access (id INTEGER PRIMARY KEY, model INTEGER, "group" INTEGER, perm_read INTEGER,
                              active INTEGER);
CREATE TABLE res_group (id INTEGER PRIMARY KEY, name TEXT);
-- As sale_opportunity's module leaves them: no access row for parties (every user reads them); for
-- opportunities a default row that grants nothing and read for its two groups.
INSERT INTO ir_model VALUES (1, 'party.party'), (2, 'sale.opportunity'), (3, 'ir.note');
INSERT INTO res_group VALUES (10, 'Sales'), (11, 'Sale Opportunity'), (12, 'Accounting');
INSERT INTO ir_model_access VALUES (20, 2, NULL, 0, 1), (21, 2, 10, 1, 1), (22, 2, 11, 1, 1), (23, 3, 12, 1, 1);
INSERT INTO party_party VALUES (5, 'Dana Reyes', 'P5', 1);
INSERT INTO party_contact_mechanism VALUES (50, 5, 'email', 'dana@example.com', 1),
                                           (51, 5, 'phone', '+1 555 0100', 1),
                                           (52, 5, 'website', 'https://dana.example.com', 1);
INSERT INTO sale_opportunity VALUES (5, 5, 'Standby cluster', 'Two regions', 'O5', 'lead', '2026-01-02', NULL);
INSERT INTO ir_note VALUES (70, 'party.party,5', 'Prefers e-mail.'), (71, 'sale.opportunity,5', 'Budget in Q2.');
"""


@pytest.fixture(scope="module")
def tryton() -> Mappings:
    return load_mappings(ROOT / "connectors", applications=("tryton",))


def test_a_party_names_only_its_email_and_phone_contact_mechanisms_as_subjects(tryton: Mappings) -> None:
    db = Database(TRYTON_TABLES)
    found = parts(reader(tryton, "tryton", db).triggered(event("tryton", "party_party", {"id": 5})))
    root = found[("tryton/party/5", "root")]
    assert root.subjects == {"tryton_party:5", "email:dana@example.com", "phone:+1 555 0100", "name:dana reyes"}
    assert not any("dana.example.com" in subject for subject in root.subjects)  # the website: not a subject
    assert root.text == "Dana Reyes"
    # The e-mail and phone as text, one part: a party is found by them, not by its website.
    assert found[("tryton/party/5", "contacts")].text == "email: dana@example.com\n\nphone: +1 555 0100"


def test_a_note_is_a_part_only_of_the_record_its_resource_names(tryton: Mappings) -> None:
    db = Database(TRYTON_TABLES)
    read = reader(tryton, "tryton", db)
    party = parts(read.triggered(event("tryton", "party_party", {"id": 5})))
    opportunity = parts(read.triggered(event("tryton", "sale_opportunity", {"id": 5})))
    assert party[("tryton/party/5", "ir_note/70")].text == "Prefers e-mail."
    assert ("tryton/party/5", "ir_note/71") not in party  # the same id 5, but the opportunity's note
    assert opportunity[("tryton/opportunity/5", "ir_note/71")].text == "Budget in Q2."
    assert ("tryton/opportunity/5", "ir_note/70") not in opportunity
    changed = parts(read.triggered(event("tryton", "ir_note", {"id": 71})))
    assert list(changed) == [("tryton/opportunity/5", "ir_note/71")]
    db.run("DELETE FROM ir_note WHERE id = 71")
    before = {"resource": "sale.opportunity,5", "message": "Budget in Q2."}
    deleted = parts(read.triggered(event("tryton", "ir_note", {"id": 71}, before, op=Op.DELETE)))
    assert list(deleted) == [("tryton/opportunity/5", "ir_note/71")]  # found by the before image's reference
    assert deleted[("tryton/opportunity/5", "ir_note/71")].deleted


def test_who_may_read_a_party_or_an_opportunity_follows_trytons_model_access(tryton: Mappings) -> None:
    db = Database(TRYTON_TABLES)
    read = reader(tryton, "tryton", db)

    def groups(table: str, kind: str) -> tuple[str, ...] | None:
        return parts(read.triggered(event("tryton", table, {"id": 5})))[(f"tryton/{kind}/5", "root")].groups

    assert groups("party_party", "party") == ("tryton:all-users",)  # no access row: every user
    assert groups("sale_opportunity", "opportunity") == ("tryton-group:Sales", "tryton-group:Sale Opportunity")
    # A right granted to another group re-reads the opportunities (only their roots), not the parties.
    db.run("INSERT INTO ir_model_access VALUES (24, 2, 12, 1, 1)")
    granted = parts(read.triggered(event("tryton", "ir_model_access", {"id": 24})))
    assert list(granted) == [("tryton/opportunity/5", "root")]
    assert "tryton-group:Accounting" in (granted[("tryton/opportunity/5", "root")].groups or ())
    # Parties restricted to one group: only it reads them from then on.
    db.run("INSERT INTO ir_model_access VALUES (25, 1, 10, 1, 1)")
    restricted = parts(read.triggered(event("tryton", "ir_model_access", {"id": 25})))
    assert list(restricted) == [("tryton/party/5", "root")]
    assert restricted[("tryton/party/5", "root")].groups == ("tryton-group:Sales",)
    # The row archived (an update that takes it out of the hop's where): the parties are read again,
    # found from the update's before image, and every user reads them once more.
    before = db("SELECT * FROM ir_model_access WHERE id = %s", [25])[0]
    db.run("UPDATE ir_model_access SET active = 0 WHERE id = 25")
    after = db("SELECT * FROM ir_model_access WHERE id = %s", [25])[0]
    archived = ChangeEvent(
        source="tryton",
        table="ir_model_access",
        op=Op.UPDATE,
        key={"id": 25},
        before=before,
        after=after,
        version=next(_version),
        commit_ts=WHEN,
    )
    found = parts(read.triggered(archived))
    assert list(found) == [("tryton/party/5", "root")]
    assert found[("tryton/party/5", "root")].groups == ("tryton:all-users",)
