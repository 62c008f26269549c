"""The seed's content, without databases: deterministic, grouped, full of people and errors."""

from __future__ import annotations

import random
import re

from streams.eval.build_golden_set import IndexEntry, book_index
from streams.pipeline.chunk_document import chunk_text
from streams.sources.edits import editable_paragraphs
from streams.sources.html_to_wikitext import WikiPage, html_to_wikitext, page_title
from streams.sources.people import STAFF_DOMAIN, make_people
from streams.sources.seed import seed_people, split_documents
from streams.sources.seed_crm import generate_crm, generate_notes
from streams.sources.seed_tickets import CATEGORIES, generate_tickets
from streams.sources.seed_wiki import generate_wiki_pages

SAMPLE_HTML = """<html><head><title>5.1. Table Basics</title></head><body>
<div class="navheader"><a href="ddl.html">Prev</a> Up Next</div>
<div class="sect1"><h2 class="title">5.1. Table Basics</h2>
<p>A table in a <a href="glossary.html">relational database</a> is much like a table on paper.</p>
<p>Each column has a <strong>data type</strong>.</p>
<h3>5.1.1. Creating</h3>
<ul><li><p>first item</p></li><li><p>second item</p></li></ul>
<pre class="programlisting">CREATE TABLE products (
    product_no integer
);</pre>
<p>See <a href="https://example.org/">elsewhere</a> &amp; more.</p></div>
<div class="navfooter">Home</div></body></html>"""
ALL_ERRORS = tuple(error for category in CATEGORIES for error in category.errors)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def test_html_to_wikitext_writes_headings_paragraphs_lists_and_code() -> None:
    page = html_to_wikitext(SAMPLE_HTML, {"glossary.html": "Glossary"})

    assert page.title == "Table Basics"
    assert page.text == (
        "A table in a [[Glossary|relational database]] is much like a table on paper.\n\n"
        "Each column has a '''data type'''.\n\n"
        "=== Creating ===\n\n"
        "* first item\n* second item\n\n"
        "<pre>\nCREATE TABLE products (\n    product_no integer\n);\n</pre>\n\n"
        "See elsewhere & more.\n"
    )


def test_html_to_wikitext_nests_lists_and_writes_table_rows_as_items() -> None:
    html = (
        "<html><head><title>11.2. Index Types</title></head><body><div class='itemizedlist'><ul>"
        "<li><p>An <code>=</code> operator:</p><div><ul><li><p>A = A</p></li><li>A = B, then B = A</li></ul></div></li>"
        "<li>Ordering <em>is</em> total</li></ul></div>"
        "<table><tr><th>Type</th><th>Use</th></tr><tr><td>B-tree</td><td></td></tr></table></body></html>"
    )
    page = html_to_wikitext(html)
    assert page_title(html) == page.title == "Index Types"
    assert page.text == (
        "* An = operator:\n** A = A\n** A = B, then B = A\n* Ordering is total\n* Type — Use\n* B-tree\n"
    )


def test_a_bracket_before_a_link_survives_the_round_trip() -> None:
    page = html_to_wikitext("<p>\\dAc [<a href='app-psql.html#P'>pattern</a>]</p>", {"app-psql.html": "psql"})
    assert page.text == "\\dAc [<nowiki/>[[psql|pattern]]]\n"
    assert chunk_text(page.text, "wikitext")[0].text == "\\dAc [pattern]"


def test_book_index_names_sub_entries_after_their_entry() -> None:
    html = (
        "<html><body><dl><dt>autovacuum, <a href='routine-vacuuming.html#AUTOVACUUM'>The Autovacuum Daemon</a></dt>"
        "<dd><dl><dt>configuration parameters, <a href='runtime-config-autovacuum.html'>Automatic Vacuuming</a>"
        ", <a href='runtime-config-autovacuum.html#X'>again</a></dt></dl></dd>"
        "<dt>ANALYZE, <a href='sql-analyze.html'>ANALYZE</a></dt></dl></body></html>"
    )
    assert book_index(html) == [
        IndexEntry("autovacuum", ("routine-vacuuming.html",)),
        IndexEntry("autovacuum, configuration parameters", ("runtime-config-autovacuum.html",)),
        IndexEntry("ANALYZE", ("sql-analyze.html",)),
    ]


def test_people_are_unique_and_staff_cover_every_team() -> None:
    people = make_people(random.Random(1), 12, 200)
    emails = [p.email for p in (*people.staff, *people.customers)]

    assert len(emails) == len(set(emails))
    assert all(p.domain == STAFF_DOMAIN for p in people.staff)
    assert all(p.domain != STAFF_DOMAIN for p in people.customers)
    assert {p.team for p in people.staff} == {"support", "engineering", "billing", "sales", "exec"}


def test_split_documents_shares_out_every_document() -> None:
    assert split_documents(301, ("wiki", "tickets", "crm")) == {"wiki": 101, "tickets": 100, "crm": 100}
    assert split_documents(5, ("crm",)) == {"crm": 5}


def test_tickets_are_deterministic_for_a_seed() -> None:
    people = seed_people(300, seed=7)

    first = list(generate_tickets(random.Random("7:tickets"), people, 50))
    again = list(generate_tickets(random.Random("7:tickets"), seed_people(300, seed=7), 50))
    other = list(generate_tickets(random.Random("8:tickets"), people, 50))

    assert first == again
    assert first != other


def test_tickets_mention_people_and_errors_and_have_groups() -> None:
    people = seed_people(600, seed=0)
    tickets = list(generate_tickets(random.Random(0), people, 200))

    for ticket in tickets:
        assert ticket.groups and ticket.group == ticket.groups[0]
        assert ticket.requester.email
        assert any(error in ticket.description for error in ALL_ERRORS)
        assert ticket.requester.name in ticket.description
        assert 0 <= len(ticket.comments) <= 6
        assert all(c.author.email and c.body for c in ticket.comments)
    assert any(EMAIL.search(t.description) for t in tickets)  # some name a colleague by email
    assert {t.status for t in tickets} >= {"open", "solved"}
    assert any(not c.public for t in tickets for c in t.comments)
    assert any("exec" in t.groups for t in tickets)


def test_crm_contacts_and_notes_have_groups_and_subjects() -> None:
    people = seed_people(300, seed=3)
    rng = random.Random(3)
    crm = generate_crm(rng, people, 100)
    notes = list(generate_notes(rng, people, crm))

    assert len(crm.contacts) + len(notes) == 100
    assert all(c.groups and c.person.email for c in crm.contacts)
    for note in notes:
        contact = crm.contacts[note.contact_index].person
        assert note.groups and note.author.is_staff
        assert note.kind in ("note", "call", "meeting", "email")
        assert contact.name in note.title + note.body
    assert {a.domain for a in crm.accounts} >= {c.person.domain for c in crm.contacts}


def test_wiki_pages_have_groups_revisions_and_staff_authors() -> None:
    corpus = [WikiPage(f"Page {i}", "\n\n".join(f"Paragraph {j} of page {i}." for j in range(i + 2))) for i in range(4)]
    people = seed_people(300, seed=0)

    pages = list(generate_wiki_pages(random.Random(0), corpus, people, 10))

    assert len({p.title for p in pages}) == 10  # cycled pages get a numbered title
    assert any(p.title.endswith(" (3)") for p in pages)
    for page in pages:
        assert page.groups and page.restrictions
        assert 1 <= len(page.revisions) <= 3
        assert all(r.author.is_staff for r in page.revisions)
        assert [r.timestamp for r in page.revisions] == sorted(r.timestamp for r in page.revisions)
        assert page.revisions[-1].author.email or page.revisions[-1].text
        assert "== Page owners ==" in page.revisions[-1].text
    assert pages == list(generate_wiki_pages(random.Random(0), corpus, people, 10))


def test_each_wiki_revision_changes_the_page_text() -> None:
    # An application saves no revision for an unchanged text, so a repeated draft would lose its author.
    corpus = [WikiPage(f"Page {i}", "\n\n".join(f"Paragraph {j} of page {i}." for j in range(i + 1))) for i in range(6)]
    people = seed_people(300, seed=0)
    for seed in range(200):
        for page in generate_wiki_pages(random.Random(seed), corpus, people, 6):
            texts = [revision.text.strip() for revision in page.revisions]
            assert len(set(texts)) == len(texts), (seed, page.title)
            assert [len(text) for text in texts] == sorted(len(text) for text in texts)


def test_editable_paragraphs_skip_headings_lists_and_code() -> None:
    text = "== Head ==\n\nProse one.\n\n* item\n* item\n\n<pre>\ncode\n</pre>\n\nProse two."
    assert editable_paragraphs(text) == [1, 4]
