"""`streams seed` and the edit helpers against the real source databases of the local stack."""

from __future__ import annotations

import random

import pytest

from streams.settings import Settings
from streams.sources import edits
from streams.sources.connect import connect_mariadb, connect_postgres
from streams.sources.corpus import ensure_corpus, load_corpus
from streams.sources.edits import editable_paragraphs
from streams.sources.seed import run_seed

pytestmark = pytest.mark.integration

COUNTED = {
    "tickets": ("tickets", "ticket_comments"),
    "crm": ("contacts", "notes"),
    "wiki": ("page", "revision"),
}


def _counts(settings: Settings) -> dict[str, int]:
    counts: dict[str, int] = {}
    for source, dsn in (("tickets", settings.dsn("tickets")), ("crm", settings.dsn("crm"))):
        with connect_postgres(dsn, name=source) as pg:
            for table in COUNTED[source]:
                row = pg.execute(f"SELECT count(*) FROM {table}").fetchone()
                counts[f"{source}.{table}"] = int(row[0]) if row else 0
    wiki = connect_mariadb(settings.dsn("wiki"))
    try:
        with wiki.cursor() as cur:
            for table in COUNTED["wiki"]:
                cur.execute(f"SELECT count(*) FROM {table}")
                counts[f"wiki.{table}"] = int(cur.fetchone()[0])
    finally:
        wiki.close()
    return counts


def test_seed_adds_the_documents_it_reports(local_stack: Settings) -> None:
    before = _counts(local_stack)

    summary = run_seed(local_stack, docs=30, seed=11)

    after = _counts(local_stack)
    assert summary.documents == {"wiki": 10, "tickets": 10, "crm": 10}
    for table in after:
        assert after[table] - before[table] == summary.rows[table], table
    assert summary.rows["wiki.page"] == 10
    assert summary.rows["tickets.tickets"] == 10
    assert summary.rows["crm.contacts"] + summary.rows["crm.notes"] == 10
    assert 10 <= summary.rows["wiki.revision"] <= 30


def test_edit_wiki_paragraph_changes_one_paragraph(local_stack: Settings) -> None:
    run_seed(local_stack, docs=3, seed=12, sources=("wiki",))
    page_id = edits.long_wiki_page(dsn=local_stack.dsn("wiki"))
    old = _latest_text(local_stack, page_id)

    rev_id = edits.edit_wiki_paragraph(page_id, random.Random(1), dsn=local_stack.dsn("wiki"))

    new = _latest_text(local_stack, page_id, expected_rev=rev_id)
    old_blocks, new_blocks = old.split("\n\n"), new.split("\n\n")
    assert len(old_blocks) == len(new_blocks) >= 50
    assert sum(a != b for a, b in zip(old_blocks, new_blocks, strict=True)) == 1


def test_ticket_and_note_edits_round_trip(local_stack: Settings) -> None:
    ticket = edits.add_ticket(
        "Seed test: HTTP 502",
        "Gateway fails.",
        "seed.test@acme-logistics.com",
        ["support", "engineering"],
        product="Webhooks",
    )
    comment = edits.add_ticket_comment(ticket, "agent@example.com", "Looking into it.")
    edits.set_ticket_groups(ticket, ["support"])
    edits.close_ticket(ticket)
    with connect_postgres(local_stack.dsn("tickets")) as pg:
        row = pg.execute("SELECT status, access_groups FROM tickets WHERE id = %s", (ticket,)).fetchone()
        assert row == ("solved", ["support"])
        assert pg.execute("SELECT ticket_id FROM ticket_comments WHERE id = %s", (comment,)).fetchone() == (ticket,)
    edits.delete_ticket(ticket)

    contact = edits.add_contact("Seed", "Test", "seed.test@acme-logistics.com", ["sales"])
    note = edits.add_note(contact, "rep@example.com", "Call about renewal.", kind="call")
    edits.update_note(note, body="Call about the renewal quote.", groups=["sales", "exec"])
    with connect_postgres(local_stack.dsn("crm")) as pg:
        row = pg.execute("SELECT body, access_groups FROM notes WHERE id = %s", (note,)).fetchone()
        assert row == ("Call about the renewal quote.", ["sales", "exec"])
    edits.delete_note(note)
    edits.delete_contact(contact)


def _latest_text(settings: Settings, page_id: int, expected_rev: int | None = None) -> str:
    wiki = connect_mariadb(settings.dsn("wiki"))
    try:
        with wiki.cursor() as cur:
            cur.execute(
                "SELECT p.page_latest, r.rev_text FROM page p JOIN revision r ON r.rev_id = p.page_latest"
                " WHERE p.page_id = %s",
                (page_id,),
            )
            latest, text = cur.fetchone()
    finally:
        wiki.close()
    if expected_rev is not None:
        assert latest == expected_rev
    return str(text)


def test_the_manual_has_long_pages() -> None:
    # The wiki's corpus, installed the way `streams seed` installs it (apt-get), never skipped.
    pages = load_corpus(ensure_corpus())

    assert len(pages) > 1000
    assert len({p.title for p in pages}) == len(pages)
    assert sum(1 for p in pages if len(editable_paragraphs(p.text)) >= 50) >= 5
