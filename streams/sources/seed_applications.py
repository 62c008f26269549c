"""`streams seed` for the real applications of the local stack: the same generated wiki pages and
tickets as the example schemas get, written through MediaWiki's action API and Request Tracker's
REST 2 API as the people who wrote them, so every row is one the application itself wrote.

- MediaWiki: each revision's author gets a wiki account (maintenance/createAndPromote.php, with their
  e-mail address), and saves that revision's text as themselves; a page of three revisions is three
  edits by up to three users.
- Request Tracker: each staff member is a privileged RT user; a ticket is created by its owner (or by
  RT's administrator when it has none) with its requestor as "Name <address>" and the colleague it
  names on Cc; agents' replies and internal notes are Correspond and Comment transactions in their own
  sessions. RT's REST 2 API has no way to write as an unprivileged requestor, so a customer's reply is
  recorded by the administrator's session, with the customer's words.
- Tryton: the CRM's contacts are parties with their e-mail address and phone number as contact
  mechanisms; a contact's notes are Tryton notes (`ir.note`) on their party, and an e-mail or meeting
  note (a renewal, a business review) also opens a sale opportunity of the party. All through Tryton's
  JSON-RPC API as its administrator: a Tryton note records no author of its own.

The passwords of the accounts seed makes are derived from the application's administrator password,
so a second seed finds the accounts the first one made and logs into them again.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack

from streams.settings import Settings
from streams.sources.people import Person
from streams.sources.seed_crm import CrmSeed, NoteSeed
from streams.sources.seed_tickets import TicketSeed
from streams.sources.seed_wiki import WikiPageSeed
from streams.sources.write_applications import RtApi, TrytonApi, WikiApi
from streams.stack.mediawiki import MediaWiki
from streams.stack.request_tracker import QUEUE, RequestTracker
from streams.stack.tryton import COMPANY, Tryton

Advance = Callable[[int], None]

# The generated tickets' statuses, as RT names them (RT has no "pending": a ticket waiting on its
# requestor is "stalled").
RT_STATUS = {"new": "new", "open": "open", "pending": "stalled", "solved": "resolved", "closed": "resolved"}


def account_password(admin_password: str, user: str) -> str:
    """The same password for the same account at every seed, unknown to anyone without the admin's."""
    return hmac.new(admin_password.encode(), user.encode(), hashlib.sha256).hexdigest()[:32]


def wiki_user(person: Person) -> str:
    """A wiki account's name: MediaWiki capitalises the first letter and keeps spaces."""
    return person.name


def rt_user(person: Person) -> str:
    """An RT staff account's name: the local part of the address, as a mail gateway would make it."""
    return person.email.split("@", 1)[0]


def write_mediawiki(settings: Settings, pages: Iterable[WikiPageSeed], advance: Advance) -> dict[str, int]:
    wiki = MediaWiki(settings)
    admin_password = wiki.credentials()["admin_password"]
    sessions: dict[str, WikiApi] = {}
    revisions = 0
    with ExitStack() as open_sessions:

        def session(person: Person) -> WikiApi:
            name = wiki_user(person)
            if name not in sessions:
                password = account_password(admin_password, name)
                wiki.create_user(name, password, email=person.email)
                api = open_sessions.enter_context(WikiApi(wiki.api_url))
                api.login(name, password)
                sessions[name] = api
            return sessions[name]

        for page in pages:
            latest = None
            for revision in page.revisions:
                saved = session(revision.author).edit(page.title, revision.text, summary=revision.comment)
                # MediaWiki answers "nochange" with the current revision when the text is the same.
                if saved != latest:
                    revisions += 1
                latest = saved
            advance(1)
    return {"mediawiki.user": len(sessions), "mediawiki.revision": revisions}


def write_request_tracker(settings: Settings, tickets: Iterable[TicketSeed], advance: Advance) -> dict[str, int]:
    rt = RequestTracker(settings)
    credentials = rt.credentials()
    counts = {"rt.ticket": 0, "rt.correspond": 0, "rt.comment": 0, "rt.user": 0}
    with ExitStack() as open_sessions:
        admin = open_sessions.enter_context(
            RtApi(rt.rest2_url, credentials["admin_user"], credentials["admin_password"])
        )
        sessions: dict[str, RtApi] = {}

        def agent(person: Person) -> RtApi:
            name = rt_user(person)
            if name not in sessions:
                password = account_password(credentials["admin_password"], name)
                if not admin.user_exists(name):  # else made by an earlier seed, with the same password
                    admin.create_user(name, person.email, person.name, password)
                    counts["rt.user"] += 1
                sessions[name] = open_sessions.enter_context(RtApi(rt.rest2_url, name, password))
            return sessions[name]

        for ticket in tickets:
            for kind, _ in _write_ticket(admin, agent, ticket):
                counts[kind] += 1
            advance(1)
    return counts


def _write_ticket(admin: RtApi, agent: Callable[[Person], RtApi], ticket: TicketSeed) -> Iterator[tuple[str, int]]:
    owner = agent(ticket.assignee) if ticket.assignee else None
    colleague = ticket.colleague
    number = (owner or admin).create_ticket(
        QUEUE,
        ticket.subject,
        ticket.description,
        [f"{ticket.requester.name} <{ticket.requester.email}>"],
        cc=[f"{colleague.name} <{colleague.email}>"] if colleague else (),
        owner=owner.user if owner else None,
    )
    yield "rt.ticket", number
    for comment in ticket.comments:
        if not comment.author.is_staff:
            admin.correspond(number, comment.body)
            yield "rt.correspond", number
        elif comment.public:
            agent(comment.author).correspond(number, comment.body)
            yield "rt.correspond", number
        else:
            agent(comment.author).comment(number, comment.body)
            yield "rt.comment", number
    status = RT_STATUS[ticket.status]
    if status not in ("new", "open"):
        admin.set_status(number, status)


# The note kinds that are a sale in progress: Tryton has an opportunity for them, beside the note.
OPPORTUNITY_KINDS = ("email", "meeting")


def write_tryton(settings: Settings, crm: CrmSeed, notes: Iterable[NoteSeed], advance: Advance) -> dict[str, int]:
    """Every contact a party (e-mail and phone), then the notes on them; advances once per document."""
    with Tryton(settings).admin_api() as api:
        return _write_crm(api, api.ensure_company(COMPANY), crm, notes, advance)


def _write_crm(
    api: TrytonApi, company: int, crm: CrmSeed, notes: Iterable[NoteSeed], advance: Advance
) -> dict[str, int]:
    counts = {"tryton.party": 0, "tryton.note": 0, "tryton.opportunity": 0}
    parties = []
    for contact in crm.contacts:
        parties.append(api.create_party(contact.person.name, tryton_contacts(contact.person)))
        counts["tryton.party"] += 1
        advance(1)
    for note in notes:
        party = parties[note.contact_index]
        api.create_note(f"party.party,{party}", f"{note.title}\n\n{note.body}")
        counts["tryton.note"] += 1
        if note.kind in OPPORTUNITY_KINDS:
            api.create_opportunity(party, company, note.title, note.body)
            counts["tryton.opportunity"] += 1
        advance(1)
    return counts


def tryton_contacts(person: Person) -> list[tuple[str, str]]:
    """A party's contact mechanisms, as Tryton types them."""
    return [("email", person.email), ("phone", person.phone)]
