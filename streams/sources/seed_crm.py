"""Generate the CRM: an account per customer company, contacts (the customers) and notes by staff
about calls, meetings, emails and deals with those contacts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from streams.sources.people import COMPANIES, People, Person
from streams.sources.seed_tickets import CATEGORIES, PLANS, PRODUCTS
from streams.sources.timeline import EPOCH

LIFECYCLE_STAGES = ("lead", "marketing_qualified", "sales_qualified", "opportunity", "customer", "evangelist")
CONTACT_GROUPS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("sales",), 6),
    (("sales", "support"), 5),
    (("sales", "billing"), 2),
    (("sales", "exec"), 1),
)
COMPETITORS = ("Confluent Cloud", "Fivetran", "Airbyte", "an in-house Kafka team", "AWS DMS")

# (kind, title, body, extra groups). Bodies name the contact, the company, products and staff.
_NOTES = (
    (
        "call",
        "Discovery call with {contact}",
        "Call with {contact} ({title}, {company}). They run {volume} events a day through {product} and "
        'are evaluating {competitor}. Main pain: "{error}" during peak hours. Next step: technical deep '
        "dive with {engineer} on {date}.",
        (),
    ),
    (
        "meeting",
        "Quarterly business review: {company}",
        "QBR with {contact} and two of their engineers. Usage of {product} grew {growth}% this quarter. "
        "They raised the {error} incident from last month; {support} summarised the fix. Renewal on the "
        "{plan} plan is likely; they asked for a {discount}% multi-year discount.",
        ("exec",),
    ),
    (
        "email",
        "Re: renewal quote for {company}",
        "{contact} replied to the renewal quote: {seats} seats of {product} at ${price} per seat per month. "
        "Procurement needs the security questionnaire before signing. Sent by {author}.",
        (),
    ),
    (
        "note",
        "Escalation: {company} production issue",
        '{contact} escalated the open ticket about "{error}" in {product}. Their CTO is watching this. '
        "Agreed with {support} to give daily updates until it is solved.",
        ("support",),
    ),
    (
        "call",
        "Billing question from {contact}",
        "{contact} asked why the last invoice was higher than expected: {seats} extra seats were added in "
        "{month}. Explained proration; {billing} will send a corrected invoice breakdown.",
        ("billing",),
    ),
    (
        "meeting",
        "Onboarding workshop with {company}",
        "Ran the onboarding workshop for {contact}'s team ({attendees} attendees). Covered {product}, SSO "
        "setup and alerting. Follow-up: share the runbook and schedule office hours with {engineer}.",
        (),
    ),
    (
        "note",
        "Churn risk: {company}",
        "{contact} mentioned that leadership is comparing us with {competitor} because of repeated "
        '"{error}" errors. Proposed an architecture review and a service credit. Owner: {author}.',
        ("exec",),
    ),
    (
        "email",
        "Intro: {contact} <> {engineer}",
        "Introduced {contact} ({email}) to {engineer} to discuss the {product} roadmap, in particular "
        "change data capture from PostgreSQL and sub-second index freshness.",
        (),
    ),
)


@dataclass(frozen=True)
class AccountSeed:
    name: str
    domain: str
    industry: str


@dataclass(frozen=True)
class ContactSeed:
    person: Person
    lifecycle_stage: str
    groups: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class NoteSeed:
    contact_index: int  # index into the seed's contacts
    author: Person
    kind: str
    title: str
    body: str
    groups: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True)
class CrmSeed:
    accounts: tuple[AccountSeed, ...]
    contacts: tuple[ContactSeed, ...]
    notes_count: int


def crm_split(documents: int, customers: int) -> tuple[int, int]:
    """How many of the CRM's documents are contacts and how many are notes."""
    contacts = min(customers, max(1, documents // 3))
    return contacts, max(0, documents - contacts)


def generate_crm(rng: random.Random, people: People, documents: int) -> CrmSeed:
    contact_count, note_count = crm_split(documents, len(people.customers))
    accounts = tuple(AccountSeed(name, domain, industry) for name, domain, industry in COMPANIES)
    options = [groups for groups, _ in CONTACT_GROUPS]
    weights = [weight for _, weight in CONTACT_GROUPS]
    contacts = tuple(
        ContactSeed(
            person=person,
            lifecycle_stage=rng.choice(LIFECYCLE_STAGES),
            groups=rng.choices(options, weights=weights)[0],
            created_at=EPOCH - timedelta(days=rng.uniform(30, 900)),
        )
        for person in people.customers[:contact_count]
    )
    return CrmSeed(accounts=accounts, contacts=contacts, notes_count=note_count)


def generate_notes(rng: random.Random, people: People, crm: CrmSeed) -> Iterator[NoteSeed]:
    for _ in range(crm.notes_count):
        index = rng.randrange(len(crm.contacts))
        yield _note(rng, people, index, crm.contacts[index])


def _note(rng: random.Random, people: People, index: int, contact: ContactSeed) -> NoteSeed:
    kind, title, body, extra = rng.choice(_NOTES)
    author = people.staff_in(rng, "sales", "exec") if rng.random() < 0.8 else people.staff_in(rng, "support")
    created = contact.created_at + timedelta(days=rng.uniform(1, 400))
    person = contact.person
    values = {
        "contact": person.name,
        "email": person.email,
        "title": person.title,
        "company": person.company,
        "product": rng.choice(PRODUCTS),
        "competitor": rng.choice(COMPETITORS),
        "error": rng.choice(rng.choice(CATEGORIES).errors),
        "engineer": people.staff_in(rng, "engineering").name,
        "support": people.staff_in(rng, "support").name,
        "billing": people.staff_in(rng, "billing").name,
        "author": author.name,
        "plan": rng.choice(PLANS),
        "volume": f"{rng.randint(1, 900)} million",
        "growth": rng.randint(5, 180),
        "discount": rng.choice((5, 8, 10, 12, 15)),
        "seats": rng.randint(5, 400),
        "price": rng.choice((19, 29, 49, 79, 99)),
        "attendees": rng.randint(3, 25),
        "month": created.strftime("%B"),
        "date": (created + timedelta(days=rng.randint(2, 14))).strftime("%B %-d"),
    }
    groups = tuple(dict.fromkeys((*contact.groups, *extra)))
    return NoteSeed(
        contact_index=index,
        author=author,
        kind=kind,
        title=title.format(**values),
        body=body.format(**values),
        groups=groups,
        created_at=created,
    )
