"""Tryton indexed end to end: a party with its e-mail and phone, an opportunity and notes on both written
through Tryton's JSON-RPC API, captured by connectors/tryton.json, read through
connectors/tryton.mapping.yaml's joins (a note names its record as `party.party,<id>`) and searched
through /search; the note edited and deleted, then the party forgotten by its e-mail. On the whole local
stack, skipped unless STREAMS_STACK_APPS names tryton."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import pytest

from streams.settings import Settings, get_settings
from streams.sources.write_applications import TrytonApi
from streams.stack.tryton import COMPANY, Tryton
from tests.applications.helpers import document_texts, forget_email, hybrid_found
from tests.integration.conftest import local_stack, worker  # noqa: F401  (the session's stack and worker)
from tests.integration.helpers import es_client, found_documents, state_record, unique, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        "tryton" not in get_settings().stack_apps,
        reason="STREAMS_STACK_APPS does not name 'tryton' (e.g. STREAMS_STACK_APPS=mediawiki,request-tracker,tryton)",
    ),
]
WAIT_S = 180.0  # a new connector's first snapshot on a shared two-core machine


@pytest.fixture
def tryton(worker: Settings) -> Iterator[tuple[TrytonApi, int]]:  # noqa: F811
    """Tryton's administrator logged in through JSON-RPC, and the company opportunities belong to."""
    with Tryton(worker).admin_api() as api:
        yield api, api.ensure_company(COMPANY)


def _searchable(document_id: str, word: str) -> bool:
    """Found by the word (BM25 matches it: hybrid search alone has nearest neighbours for any word) and
    listed by /search's hybrid ranking."""
    return document_id in found_documents(es_client(), word) and document_id in hybrid_found(word)


def _subjects(document_id: str) -> set[str]:
    state = state_record(es_client(), document_id) or {}
    return set((state.get("root") or {}).get("subjects") or [])


def test_a_party_its_opportunity_and_notes_are_indexed_edited_deleted_and_forgotten_by_email(
    worker: Settings,  # noqa: F811
    tryton: tuple[TrytonApi, int],
) -> None:
    api, company = tryton
    suffix = uuid.uuid4().hex[:8]
    name, email, phone = f"Dana Quill{suffix}", f"dana{suffix}@example.com", f"+1 555 {random.randint(1000, 9999)}"
    words = {key: f"zq{key}{suffix}" for key in ("lead", "note", "edited", "budget")}
    party = api.create_party(name, [("email", email), ("phone", phone)])
    opportunity = api.create_opportunity(party, company, f"Standby cluster {words['lead']}", "Two sites.")
    note = api.create_note(f"party.party,{party}", f"Prefers calls after nine: {words['note']}.")
    api.create_note(f"sale.opportunity,{opportunity}", f"Budget agreed for Q2: {words['budget']}.")
    party_id, opportunity_id = f"tryton/party/{party}", f"tryton/opportunity/{opportunity}"

    assert wait_until(lambda: _searchable(party_id, words["note"]), timeout=WAIT_S), "the party's note"
    assert wait_until(lambda: _searchable(opportunity_id, words["lead"]), timeout=60), "the opportunity"
    assert wait_until(lambda: _searchable(opportunity_id, words["budget"]), timeout=60), "the opportunity's note"
    # The contact mechanisms are the party's subjects; the opportunity names the party.
    assert _subjects(party_id) == {f"tryton_party:{party}", f"email:{email}", f"phone:{phone}", f"name:{name.lower()}"}
    assert _subjects(opportunity_id) == {f"tryton_party:{party}"}
    assert party_id in found_documents(es_client(), email)  # its contact mechanisms are text too

    # The note edited: the new word is searchable, the old one is gone from the party.
    api.edit_note(note, f"Prefers e-mail now: {words['edited']}.")
    assert wait_until(lambda: _searchable(party_id, words["edited"]), timeout=60), "the edited note"
    assert wait_until(lambda: words["note"] not in document_texts(party_id), timeout=60), "the note's old text"
    assert party_id not in found_documents(es_client(), words["note"])

    # The note deleted: its text is gone, the party stays.
    api.delete_note(note)
    assert wait_until(lambda: words["edited"] not in document_texts(party_id), timeout=60), "the deleted note's text"
    assert party_id not in found_documents(es_client(), words["edited"])
    assert _subjects(party_id)

    # Forgetting the e-mail forgets the party, its opportunity and the opportunity's note.
    receipt = forget_email(worker, email)
    assert receipt["status"] in ("unsearchable", "purged"), receipt
    removed = {d for r in receipt["removed"] for d in r["document_ids"]}
    assert {party_id, opportunity_id} <= removed, receipt
    es = es_client()
    for word in (name, email, words["lead"], words["budget"]):
        assert not {party_id, opportunity_id} & found_documents(es, word), word  # BM25
        assert not {party_id, opportunity_id} & hybrid_found(word), word  # hybrid, through /search


def test_a_party_forgotten_by_its_name_takes_its_opportunity_and_is_redacted_where_a_note_mentions_it(
    worker: Settings,  # noqa: F811
    tryton: tuple[TrytonApi, int],
) -> None:
    api, company = tryton
    suffix = unique("")[:10]  # letters only: a name is words of letters
    name, email = f"Rosa Quill{suffix}", f"rosa{suffix}@example.com"
    words = {key: f"zq{key}{suffix}" for key in ("lead", "other")}
    party = api.create_party(name, [("email", email)])
    opportunity = api.create_opportunity(party, company, f"Replica in Lisbon {words['lead']}", "One site.")
    other = api.create_party(f"Otto Quill{suffix}", [("email", f"otto{suffix}@example.com")])
    api.create_note(f"party.party,{other}", f"Met {name} at the fair: {words['other']}.")
    party_id, opportunity_id, other_id = (
        f"tryton/party/{party}",
        f"tryton/opportunity/{opportunity}",
        f"tryton/party/{other}",
    )
    assert wait_until(lambda: _searchable(opportunity_id, words["lead"]), timeout=WAIT_S), "the opportunity"
    assert wait_until(lambda: _searchable(other_id, words["other"]), timeout=60), "the other party's note"
    assert wait_until(lambda: f"name:{name.lower()}" in _subjects(party_id), timeout=60), "the party's name"

    receipt = forget_email(worker, name, kind="name")
    assert receipt["status"] in ("unsearchable", "purged"), receipt
    assert f"email:{email}" in receipt["identifiers"], receipt["identifiers"]  # the name found the party
    removed = {d for r in receipt["removed"] for d in r["document_ids"]}
    assert {party_id, opportunity_id} <= removed and other_id not in removed, receipt
    redacted = {d for r in receipt["redacted"] for d in r["document_ids"]}
    assert other_id in redacted, receipt
    es = es_client()
    assert not {party_id, opportunity_id} & found_documents(es, words["lead"])
    texts = document_texts(other_id)
    assert words["other"] in texts and name not in texts  # the note kept, the name redacted


def test_who_may_read_a_party_or_an_opportunity_follows_trytons_model_access(
    worker: Settings,  # noqa: F811
    tryton: tuple[TrytonApi, int],
) -> None:
    """Groups from Tryton's model access (connectors/tryton.mapping.yaml): a party, readable by every
    user, is in tryton:all-users; an opportunity only in its module's Sales and Sale Opportunity groups,
    so a user of the other group does not see it. Restricting parties to Sales (an ir.model.access
    row, written through the API as an administrator would in Tryton's access screen) re-reads every
    party into that group; deleting the row gives them back to every user."""
    api, company = tryton
    suffix = uuid.uuid4().hex[:8]
    party_word, lead_word = f"zqparty{suffix}", f"zqlead{suffix}"
    party = api.create_party(f"Ezra Vell {party_word}", [("email", f"ezra{suffix}@example.com")])
    opportunity = api.create_opportunity(party, company, f"Archive tier {lead_word}", "One site.")
    party_id, opportunity_id = f"tryton/party/{party}", f"tryton/opportunity/{opportunity}"
    everyone, sales = ["tryton:all-users"], ["tryton-group:Sales"]

    assert wait_until(lambda: party_id in hybrid_found(party_word, groups=everyone), timeout=WAIT_S), "party"
    assert wait_until(lambda: opportunity_id in hybrid_found(lead_word, groups=sales), timeout=WAIT_S), "opportunity"
    assert opportunity_id not in hybrid_found(lead_word, groups=everyone)  # a user of another group
    assert opportunity_id in hybrid_found(lead_word, groups=["tryton-group:Sale Opportunity"])

    (model,) = api.model("ir.model", "search", [("model", "=", "party.party")])
    (group,) = api.model("res.group", "search", [("name", "=", "Sales")])
    access = api.create("ir.model.access", {"model": model, "group": group, "perm_read": True})
    try:
        assert wait_until(lambda: party_id not in hybrid_found(party_word, groups=everyone), timeout=WAIT_S)
        assert party_id in hybrid_found(party_word, groups=sales)
    finally:
        api.delete("ir.model.access", [access])
    assert wait_until(lambda: party_id in hybrid_found(party_word, groups=everyone), timeout=WAIT_S), "given back"
