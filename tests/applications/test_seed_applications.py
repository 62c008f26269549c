"""`streams seed` through the real applications: wiki pages saved by their authors' MediaWiki accounts
and tickets written through RT's REST 2 API with their requestors, Cc and owners, and the CRM's
contacts and notes written through Tryton's JSON-RPC API, then indexed by the worker with those people
as the documents' subjects. On the whole local stack; skipped unless STREAMS_STACK_APPS names the
applications."""

from __future__ import annotations

import random

import psycopg
import pytest

from streams.settings import Settings, get_settings
from streams.sources.corpus import DOC_DIR, ensure_corpus, load_corpus
from streams.sources.seed import run_seed, seed_people
from streams.sources.seed_applications import rt_user
from streams.sources.seed_crm import generate_crm, generate_notes
from streams.sources.seed_tickets import generate_tickets
from streams.sources.seed_wiki import generate_wiki_pages
from streams.sources.write_applications import WikiApi
from streams.stack.mediawiki import MediaWiki
from streams.stack.request_tracker import RequestTracker
from streams.stack.tryton import Tryton
from tests.applications.helpers import document_texts
from tests.integration.conftest import local_stack, worker  # noqa: F401  (the session's stack and worker)
from tests.integration.helpers import es_client, state_record, wait_until

pytestmark = pytest.mark.integration
WAIT_S = 180.0
DOCS = 4  # two pages and two tickets


def _subjects(document_id: str, part: str) -> set[str]:
    state = state_record(es_client(), document_id) or {}
    return set(state.get("parts", {}).get(part, {}).get("subjects") or [])


@pytest.mark.skipif(
    not {"mediawiki", "request-tracker"} <= set(get_settings().stack_apps),
    reason="STREAMS_STACK_APPS does not name mediawiki and request-tracker",
)
def test_seed_writes_pages_and_tickets_through_the_applications_as_their_people(worker: Settings) -> None:  # noqa: F811
    seed = random.randrange(1_000_000)
    summary = run_seed(worker, DOCS, seed, ("mediawiki", "rt"))
    assert summary.documents == {"mediawiki": 2, "rt": 2}
    # What seed wrote, generated again from the same seed.
    people = seed_people(DOCS, seed)
    corpus = load_corpus(ensure_corpus(DOC_DIR), worker.cache_dir)
    pages = list(generate_wiki_pages(random.Random(f"{seed}:mediawiki"), corpus, people, 2))
    tickets = list(generate_tickets(random.Random(f"{seed}:rt"), people, 2))
    assert summary.rows["mediawiki.revision"] == sum(len(page.revisions) for page in pages)

    with WikiApi(MediaWiki(worker).api_url) as api:
        for page in pages:
            latest = api.page(page.title)
            assert latest["revisions"][0]["user"] == page.revisions[-1].author.name
            document_id = f"mediawiki/page/{latest['pageid']}"
            authors = {f"email:{revision.author.email}" for revision in page.revisions}
            assert wait_until(lambda d=document_id, a=authors: a <= _subjects(d, "authors"), timeout=WAIT_S), (
                document_id,
                authors,
                _subjects(document_id, "authors"),
            )

    with psycopg.connect(RequestTracker(worker).database_url(), autocommit=True) as conn:
        for ticket in tickets:
            row = conn.execute(
                "SELECT t.id, u.name FROM tickets t JOIN users u ON u.id = t.owner WHERE t.subject = %s"
                " ORDER BY t.id DESC LIMIT 1",
                (ticket.subject,),
            ).fetchone()
            assert row is not None, ticket.subject
            number, owner = row
            assert owner == (rt_user(ticket.assignee) if ticket.assignee else "Nobody")
            (messages,) = conn.execute(
                "SELECT count(*) FROM transactions WHERE objecttype = 'RT::Ticket' AND objectid = %s"
                " AND type IN ('Create', 'Correspond', 'Comment')",
                (number,),
            ).fetchone() or (0,)
            assert messages == 1 + len(ticket.comments)
            requestors = {f"email:{ticket.requester.email}"}  # the ticket is about them
            people_of_ticket = set()
            if ticket.colleague:
                people_of_ticket.add(f"email:{ticket.colleague.email}")
            if ticket.assignee:
                people_of_ticket.add(f"email:{ticket.assignee.email}")
            document_id = f"rt/ticket/{number}"
            for part, expected in (("requestors", requestors), ("people", people_of_ticket)):
                assert wait_until(lambda d=document_id, p=part, e=expected: e <= _subjects(d, p), timeout=WAIT_S), (
                    document_id,
                    part,
                    expected,
                    _subjects(document_id, part),
                )


@pytest.mark.skipif("tryton" not in get_settings().stack_apps, reason="STREAMS_STACK_APPS does not name tryton")
def test_seed_writes_the_crm_through_tryton_as_parties_with_their_notes(worker: Settings) -> None:  # noqa: F811
    seed = random.randrange(1_000_000)
    summary = run_seed(worker, 6, seed, ("tryton",))
    people = seed_people(6, seed)
    rng = random.Random(f"{seed}:tryton")
    crm = generate_crm(rng, people, 6)
    notes = list(generate_notes(rng, people, crm))
    assert summary.rows["tryton.party"] == len(crm.contacts) and summary.rows["tryton.note"] == len(notes)

    with psycopg.connect(Tryton(worker).database_url(), autocommit=True) as conn:
        for index, contact in enumerate(crm.contacts):
            row = conn.execute("SELECT max(id) FROM party_party WHERE name = %s", (contact.person.name,)).fetchone()
            assert row is not None and row[0] is not None, contact.person.name
            document_id = f"tryton/party/{row[0]}"
            subjects = {f"email:{contact.person.email}"}
            assert wait_until(lambda d=document_id, s=subjects: s <= _root_subjects(d), timeout=WAIT_S), (
                document_id,
                _root_subjects(document_id),
            )
            for note in (n for n in notes if n.contact_index == index):
                assert wait_until(lambda d=document_id, t=note.title: t in document_texts(d), timeout=WAIT_S), (
                    document_id,
                    note.title,
                )


def _root_subjects(document_id: str) -> set[str]:
    state = state_record(es_client(), document_id) or {}
    return set((state.get("root") or {}).get("subjects") or [])
