"""Load a BEIR collection into the real applications, through their own APIs: a `wiki:*` document
becomes a MediaWiki page (action API, as the wiki's administrator), a `ticket:*` document an RT ticket
(REST 2, as RT's root) in a queue named after the group. Documents of other kinds are skipped and
counted.

Who may see them follows the applications' own access groups (docs/real-applications.md): the tickets
are in `queue:<group>`; each page gets a read restriction of level <group> (a `page_restrictions` row of
type read, which core MediaWiki's API cannot write: it is written the way an access-control extension
would, in the wiki's database, right after the page is saved), so it is in `mediawiki-group:<group>` and
no longer in its namespace's group. An eval restricted to those two groups sees the collection and
nothing else of the applications.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from streams.eval.golden_set import CorpusDocument, GoldenSetError
from streams.settings import Settings
from streams.sources.batches import batches

SOURCE = "applications"
WIKI_KIND, TICKET_KIND = "wiki", "ticket"
REQUESTOR = "eval.loader@example.com"  # a ticket needs a requestor; one address for the whole load
SUMMARY = "streams eval load"
RESTRICT_BATCH = 50  # pages saved between two writes of their read restrictions
# Characters MediaWiki does not allow in a title ($wgLegalTitleChars).
_ILLEGAL_TITLE = set("#<>[]|{}")
_TITLE_MAX = 200  # bytes MediaWiki keeps of a title is 255; leave room for the group suffix


def access_groups(group: str) -> list[str]:
    """The index access groups the load's pages and tickets get, which an eval of the group searches as."""
    return [f"mediawiki-group:{group}", f"queue:{group}"]


def kind_of(doc_id: str) -> str:
    return doc_id.split(":", 1)[0] if ":" in doc_id else ""


@dataclass
class Plan:
    """The collection split by where each document goes."""

    pages: list[CorpusDocument] = field(default_factory=list)
    tickets: list[CorpusDocument] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # kind -> documents skipped

    @property
    def total(self) -> int:
        return len(self.pages) + len(self.tickets)


def plan(corpus: Sequence[CorpusDocument]) -> Plan:
    found = Plan()
    for doc in corpus:
        kind = kind_of(doc.doc_id)
        if kind == WIKI_KIND:
            found.pages.append(doc)
        elif kind == TICKET_KIND:
            found.tickets.append(doc)
        else:
            found.skipped[kind or "(no kind)"] = found.skipped.get(kind or "(no kind)", 0) + 1
    return found


def page_titles(pages: Sequence[CorpusDocument], group: str) -> dict[str, str]:
    """corpus id -> a page title of its own: the document's title (its id when it has none) with the
    group after it, so that loads into two groups are two sets of pages; MediaWiki's illegal title
    characters become spaces, and a title two documents share gets the corpus id too."""

    def clean(text: str) -> str:
        text = "".join(" " if c in _ILLEGAL_TITLE else c for c in text)
        return " ".join(text.replace("_", " ").split())[:_TITLE_MAX].strip()

    titles: dict[str, str] = {}
    taken: set[str] = set()
    for doc in pages:
        base = clean(doc.title) or clean(doc.doc_id.split(":", 1)[-1]) or "Document"
        title = f"{base} ({group})"
        key = title[:1].upper() + title[1:]  # MediaWiki capitalises a title's first letter
        if key in taken:
            title = f"{base} ({clean(doc.doc_id.split(':', 1)[-1])}, {group})"
            key = title[:1].upper() + title[1:]
        if key in taken:
            raise GoldenSetError(f"{doc.doc_id}: two documents would share the page title {title!r}")
        taken.add(key)
        titles[doc.doc_id] = title
    return titles


def ticket_subject(doc: CorpusDocument) -> str:
    return " ".join(doc.title.split())[:_TITLE_MAX] or f"Document {doc.doc_id}"


class Wiki(Protocol):
    def create_page(self, title: str, text: str, summary: str = "") -> int: ...

    def delete_page(self, page_id: int, reason: str = "") -> None: ...


class Tracker(Protocol):
    def ensure_queue(self, name: str, description: str = "") -> None: ...

    def create_ticket(self, queue: str, subject: str, content: str, requestors: Sequence[str]) -> int: ...

    def set_status(self, ticket: int, status: str) -> None: ...


Restrict = Callable[[list[int], str], None]


def load(
    found: Plan,
    group: str,
    wiki: Wiki | None,
    tracker: Tracker | None,
    restrict: Restrict,
    advance: Callable[[str, int, int], None],
    documents: dict[str, str] | None = None,
) -> dict[str, str]:
    """Create the pages and tickets; corpus id -> index document id (mediawiki/page/<page id>,
    rt/ticket/<ticket id>), filled into `documents` as they are created (so that a caller knows what
    was made when an application fails halfway). `restrict(page_ids, group)` gives saved pages their
    read restriction; `advance(what, done, total)` reports progress."""
    documents = {} if documents is None else documents
    if found.pages:
        if wiki is None:
            raise GoldenSetError(f"{len(found.pages)} wiki documents, and MediaWiki is not among the applications")
        titles = page_titles(found.pages, group)
        done = 0
        for batch in batches(found.pages, RESTRICT_BATCH):
            ids: list[int] = []
            try:
                for doc in batch:
                    page = wiki.create_page(titles[doc.doc_id], doc.text.strip() or titles[doc.doc_id], SUMMARY)
                    ids.append(page)
                    documents[doc.doc_id] = f"mediawiki/page/{page}"
            finally:  # a page saved is restricted, even when a later one fails
                restrict(ids, group)
            done += len(batch)
            advance("pages", done, len(found.pages))
    if found.tickets:
        if tracker is None:
            raise GoldenSetError(
                f"{len(found.tickets)} ticket documents, and Request Tracker is not among the applications"
            )
        tracker.ensure_queue(group, "documents of a golden set loaded by streams eval load")
        for done, doc in enumerate(found.tickets, start=1):
            content = doc.text.strip() or ticket_subject(doc)
            ticket = tracker.create_ticket(group, ticket_subject(doc), content, [REQUESTOR])
            documents[doc.doc_id] = f"rt/ticket/{ticket}"
            if done % 20 == 0 or done == len(found.tickets):
                advance("tickets", done, len(found.tickets))
    return documents


def unload(
    documents: Mapping[str, str],
    wiki: Wiki | None,
    tracker: Tracker | None,
    advance: Callable[[str, int, int], None],
) -> list[str]:
    """Delete what an earlier load made, the applications' own way: its pages through MediaWiki's API, its
    tickets in RT (status deleted: RT keeps the row, and the index leaves it out); the index document
    ids deleted. A page or ticket already gone (deleted by hand) is passed over."""
    from streams.sources.write_applications import ApplicationError

    made = sorted(documents.values())
    pages = [int(d.rsplit("/", 1)[1]) for d in made if d.startswith("mediawiki/page/")]
    tickets = [int(d.rsplit("/", 1)[1]) for d in made if d.startswith("rt/ticket/")]
    if pages and wiki is None:
        raise GoldenSetError(f"the earlier load made {len(pages)} pages, and MediaWiki is not among the applications")
    if tickets and tracker is None:
        raise GoldenSetError(
            f"the earlier load made {len(tickets)} tickets, and Request Tracker is not among the applications"
        )
    deleted: list[str] = []
    for what, ids, delete in (
        ("pages", pages, lambda n: wiki.delete_page(n, SUMMARY + " --replace") if wiki else None),
        ("tickets", tickets, lambda n: tracker.set_status(n, "deleted") if tracker else None),
    ):
        for done, n in enumerate(ids, start=1):
            try:
                delete(n)
            except ApplicationError as exc:
                if "missingtitle" not in str(exc) and "nosuchpageid" not in str(exc):
                    raise
            deleted.append(f"mediawiki/page/{n}" if what == "pages" else f"rt/ticket/{n}")
            if done % 20 == 0 or done == len(ids):
                advance(f"{what} deleted", done, len(ids))
    return deleted


def restriction_sql(database: str, page_ids: Sequence[int], group: str) -> str:
    """Read restrictions of level `group` on the pages (replacing any read restriction they had)."""
    if not page_ids:
        return ""
    if not group or not all(c.isalnum() or c in "-_." for c in group):
        raise GoldenSetError(f"group {group!r}: use letters, digits, '-', '_' or '.'")
    rows = ", ".join(f"({int(page)}, 'read', '{group}', 0, 'infinity')" for page in page_ids)
    return (
        f"INSERT INTO `{database}`.page_restrictions (pr_page, pr_type, pr_level, pr_cascade, pr_expiry)"
        f" VALUES {rows} ON DUPLICATE KEY UPDATE pr_level = VALUES(pr_level);\n"
    )


@contextmanager
def connected(
    settings: Settings, found: Plan, earlier: Mapping[str, str] | None = None
) -> Iterator[tuple[Wiki | None, Tracker | None, Restrict]]:
    """Logged-in sessions of the applications the plan needs (and those that made an `earlier` load's
    documents, to delete them), and how to restrict pages; a clear error when the stack does not run
    them."""
    from streams.sources.write_applications import RtApi, WikiApi
    from streams.stack.mariadb import MariaDB
    from streams.stack.mediawiki import DATABASE, MediaWiki
    from streams.stack.request_tracker import RequestTracker

    made = list((earlier or {}).values())
    wants_wiki = bool(found.pages) or any(d.startswith("mediawiki/") for d in made)
    wants_tracker = bool(found.tickets) or any(d.startswith("rt/") for d in made)
    needed = [app for app, wanted in (("mediawiki", wants_wiki), ("request-tracker", wants_tracker)) if wanted]
    missing = [app for app in needed if app not in settings.stack_apps]
    if missing:
        raise GoldenSetError(
            f"STREAMS_STACK_APPS does not name {', '.join(missing)}: start the applications with "
            f"STREAMS_STACK_APPS={','.join(needed)} streams stack up"
        )
    mediawiki, rt = MediaWiki(settings), RequestTracker(settings)
    servers = {"mediawiki": mediawiki, "request-tracker": rt}
    for app in needed:
        if not servers[app].healthy():
            raise GoldenSetError(
                f"{app} is not running at {servers[app].url}: start it with "
                f"STREAMS_STACK_APPS={','.join(needed)} streams stack up"
            )
    with ExitStack() as stack:
        wiki: WikiApi | None = None
        tracker: RtApi | None = None
        if wants_wiki:
            credentials = mediawiki.credentials()
            wiki = stack.enter_context(WikiApi(mediawiki.api_url))
            wiki.login(credentials["admin_user"], credentials["admin_password"])
        if wants_tracker:
            credentials = rt.credentials()
            tracker = stack.enter_context(RtApi(rt.rest2_url, credentials["admin_user"], credentials["admin_password"]))
        mariadb = MariaDB(settings)

        def restrict(page_ids: list[int], group: str) -> None:
            if page_ids:
                mariadb.client(restriction_sql(DATABASE, page_ids, group))

        yield wiki, tracker, restrict
