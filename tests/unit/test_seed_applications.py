"""`streams seed` through the real applications: who writes each ticket, reply and comment in Request
Tracker, and the accounts' passwords. The writes themselves run against the real RT and MediaWiki in
tests/applications/test_seed_applications.py; here an RtApi-shaped fake records the calls."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from streams.sources.people import make_people
from streams.sources.seed_applications import (
    OPPORTUNITY_KINDS,
    RT_STATUS,
    _write_crm,
    _write_ticket,
    account_password,
    rt_user,
)
from streams.sources.seed_crm import generate_crm, generate_notes
from streams.sources.seed_tickets import generate_tickets


@dataclass
class FakeRt:
    user: str
    calls: list[tuple[str, str, Any]] = field(default_factory=list)

    def create_ticket(self, queue: str, subject: str, content: str, requestors: list[str], **more: Any) -> int:
        self.calls.append((self.user, "create", {"requestors": requestors, **more}))
        return 7

    def correspond(self, ticket: int, content: str) -> None:
        self.calls.append((self.user, "correspond", content))

    def comment(self, ticket: int, content: str) -> None:
        self.calls.append((self.user, "comment", content))

    def set_status(self, ticket: int, status: str) -> None:
        self.calls.append((self.user, "status", status))


def test_each_message_is_written_by_its_author_with_the_ticket_s_people() -> None:
    rng = random.Random(3)
    people = make_people(rng, 12, 40)
    tickets = [t for t in generate_tickets(rng, people, 200) if t.colleague and t.assignee and len(t.comments) >= 3]
    ticket = tickets[0]
    calls: list[tuple[str, str, Any]] = []
    admin = FakeRt("root", calls)
    agents: dict[str, FakeRt] = {}

    def agent(person: Any) -> FakeRt:
        return agents.setdefault(rt_user(person), FakeRt(rt_user(person), calls))

    list(_write_ticket(admin, agent, ticket))  # type: ignore[arg-type]

    who, what, created = calls[0]
    assert (who, what) == (rt_user(ticket.assignee), "create")  # type: ignore[arg-type]
    assert created["requestors"] == [f"{ticket.requester.name} <{ticket.requester.email}>"]
    assert created["cc"] == [f"{ticket.colleague.name} <{ticket.colleague.email}>"]  # type: ignore[union-attr]
    assert created["owner"] == rt_user(ticket.assignee)  # type: ignore[arg-type]
    messages = [(who, what, body) for who, what, body in calls[1:] if what != "status"]
    assert len(messages) == len(ticket.comments)
    for (who, what, body), comment in zip(messages, ticket.comments, strict=True):
        assert body == comment.body
        if not comment.author.is_staff:
            assert (who, what) == ("root", "correspond")  # REST 2 cannot write as a requestor
        else:
            assert who == rt_user(comment.author)
            assert what == ("correspond" if comment.public else "comment")
    status = [body for _, what, body in calls if what == "status"]
    assert status == ([] if RT_STATUS[ticket.status] in ("new", "open") else [RT_STATUS[ticket.status]])


def test_every_generated_status_has_an_rt_status() -> None:
    rng = random.Random(5)
    people = make_people(rng, 12, 40)
    assert {t.status for t in generate_tickets(rng, people, 300)} <= set(RT_STATUS)


def test_an_account_s_password_is_the_same_at_every_seed_and_differs_per_account() -> None:
    assert account_password("admin-secret", "ada") == account_password("admin-secret", "ada")
    assert account_password("admin-secret", "ada") != account_password("admin-secret", "bob")
    assert account_password("other-secret", "ada") != account_password("admin-secret", "ada")


@dataclass
class FakeTryton:
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def create_party(self, name: str, contacts: list[tuple[str, str]]) -> int:
        self.calls.append(("party", (name, contacts)))
        return 100 + len(self.calls)

    def create_note(self, resource: str, message: str) -> int:
        self.calls.append(("note", (resource, message)))
        return len(self.calls)

    def create_opportunity(self, party: int, company: int, description: str, comment: str = "") -> int:
        self.calls.append(("opportunity", (party, company, description)))
        return len(self.calls)


def test_every_contact_is_a_party_with_its_address_and_phone_and_each_note_is_on_its_contact_s_party() -> None:
    rng = random.Random(5)
    people = make_people(rng, 12, 40)
    crm = generate_crm(rng, people, 30)
    notes = list(generate_notes(rng, people, crm))
    api, advanced = FakeTryton(), []
    counts = _write_crm(api, 9, crm, notes, advanced.append)  # type: ignore[arg-type]

    parties = [args for kind, args in api.calls if kind == "party"]
    assert parties == [(c.person.name, [("email", c.person.email), ("phone", c.person.phone)]) for c in crm.contacts]
    party_ids = {c.person.name: 101 + i for i, c in enumerate(crm.contacts)}  # created first, in order
    written = [args for kind, args in api.calls if kind == "note"]
    assert written == [
        (f"party.party,{party_ids[crm.contacts[n.contact_index].person.name]}", f"{n.title}\n\n{n.body}") for n in notes
    ]
    opportunities = [n for n in notes if n.kind in OPPORTUNITY_KINDS]
    assert opportunities and counts == {
        "tryton.party": len(crm.contacts),
        "tryton.note": len(notes),
        "tryton.opportunity": len(opportunities),
    }
    assert sum(advanced) == len(crm.contacts) + len(notes) == 30  # one step per document
