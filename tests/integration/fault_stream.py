"""A stream of real changes across the three sources for the fault suite, and the check that the index
ends in exactly their newest state.

Every change writes a token no other text contains (a ticket's description, a CRM note's body, a wiki
page's whole text), so the check can ask search the way a user would: the newest token of every
touched document must find it, and no older token (nor any token of a deleted document) may.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch

from streams.elastic.hybrid_index import bm25_query, chunk_filter
from streams.settings import Settings
from streams.sources import edits
from tests.integration.helpers import unique

GROUPS = ["support"]


@dataclass
class Expected:
    """What one document must look like in search once everything has caught up."""

    newest: str | None  # None: deleted, nothing of it may be searchable
    older: list[str] = field(default_factory=list)

    def replace(self, token: str | None) -> None:
        if self.newest is not None:
            self.older.append(self.newest)
        self.newest = token


class ChangeStream:
    """Creates, edits and deletes tickets, CRM notes and wiki pages at a steady rate from a thread."""

    def __init__(self, settings: Settings, total: int, rate_per_s: float, seed: int = 9) -> None:
        self.settings = settings
        self.total = total
        self.rate_per_s = rate_per_s
        self.rng = random.Random(seed)
        self.expected: dict[str, Expected] = {}
        self.live: dict[str, list[int]] = {"ticket": [], "note": [], "page": []}
        self.done = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fault-change-stream", daemon=True)
        self.contact = edits.add_contact("Fault", "Suite", f"{unique('fault')}@example.com", GROUPS)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def finished(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout=timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        interval = 1.0 / self.rate_per_s
        next_at = time.monotonic()
        while self.done < self.total and not self._stop.is_set():
            try:
                self._one_change()
                self.done += 1
            except Exception as exc:  # a source briefly unreachable: note it and go on; the count stays honest
                self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.5)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()

    def _one_change(self) -> None:
        kind = self.rng.choice(("ticket", "note", "page"))
        ids = self.live[kind]
        roll = self.rng.random()
        token = unique("zf")
        if not ids or roll < 0.25 or (len(ids) < 5 and roll < 0.6):
            self._create(kind, token)
        elif roll < 0.33:
            self._delete(kind, ids.pop(self.rng.randrange(len(ids))))
        else:
            self._edit(kind, self.rng.choice(ids), token)

    def _create(self, kind: str, token: str) -> None:
        text = f"Fault suite {kind} {token}. It exists to be found by its token."
        if kind == "ticket":
            key = edits.add_ticket(f"Fault ticket {token}", text, "fault.requester@example.com", GROUPS)
        elif kind == "note":
            key = edits.add_note(self.contact, "fault.author@example.com", text, title="Fault note")
        else:
            key = edits.new_wiki_page(f"Fault_page_{token}", text, GROUPS, "fault.author@example.com")
        self.live[kind].append(key)
        self.expected[document_id(kind, key)] = Expected(token)

    def _edit(self, kind: str, key: int, token: str) -> None:
        text = f"Fault suite {kind} edited: {token}. Only this version may be found."
        if kind == "ticket":
            edits.set_ticket_description(key, text)
            # The subject carries the creation token: keep only the newest token in the document.
            _set_ticket_subject(key, f"Fault ticket {token}")
        elif kind == "note":
            edits.update_note(key, body=text)
        else:
            edits.replace_wiki_text(key, text, "fault.author@example.com")
            _set_wiki_title(key, f"Fault_page_{token}")
        self.expected[document_id(kind, key)].replace(token)

    def _delete(self, kind: str, key: int) -> None:
        if kind == "ticket":
            edits.delete_ticket(key)
        elif kind == "note":
            edits.delete_note(key)
        else:
            edits.delete_wiki_page(key)
        self.expected[document_id(kind, key)].replace(None)


def _set_ticket_subject(ticket_id: int, subject: str) -> None:
    from streams.settings import get_settings
    from streams.sources.connect import connect_postgres

    with connect_postgres(get_settings().tickets_dsn, name="tickets") as conn:
        conn.execute("UPDATE tickets SET subject = %s WHERE id = %s", (subject, ticket_id))


def _set_wiki_title(page_id: int, title: str) -> None:
    from streams.settings import get_settings
    from streams.sources.connect import connect_mariadb

    conn = connect_mariadb(get_settings().wiki_dsn, name="wiki")
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE page SET page_title = %s WHERE page_id = %s", (title, page_id))
        conn.commit()
    finally:
        conn.close()


def document_id(kind: str, key: int) -> str:
    source = {"ticket": "tickets", "note": "crm", "page": "wiki"}[kind]
    return f"{source}/{kind}/{key}"


@dataclass
class ContentReport:
    checked_documents: int
    newest_not_found: list[str]
    older_found: list[str]

    @property
    def ok(self) -> bool:
        return not self.newest_not_found and not self.older_found

    def to_json(self) -> dict[str, Any]:
        return {
            "checked_documents": self.checked_documents,
            "newest_not_found": len(self.newest_not_found),
            "older_found": len(self.older_found),
            "examples": (self.newest_not_found + self.older_found)[:10],
        }


def check_content(es: Elasticsearch, settings: Settings, expected: dict[str, Expected]) -> ContentReport:
    """Search every token (BM25, visible chunks only, as users search): the newest must find its
    document, an older one or a deleted document's must find nothing of it."""
    queries: list[tuple[str, str, bool]] = []  # (document, token, must be found)
    for document, want in expected.items():
        if want.newest is not None:
            queries.append((document, want.newest, True))
        queries.extend((document, token, False) for token in want.older)
    newest_not_found: list[str] = []
    older_found: list[str] = []
    es.indices.refresh(index=settings.index_alias)
    for start in range(0, len(queries), 200):
        batch = queries[start : start + 200]
        body: list[dict[str, Any]] = []
        for _, token, _ in batch:
            body.append({"index": settings.index_alias})
            body.append({**bm25_query(token, chunk_filter(None, None), 20), "_source": ["document_id"]})
        responses = es.msearch(body=body)["responses"]
        for (document, token, must), response in zip(batch, responses, strict=True):
            found = {hit["_source"]["document_id"] for hit in response["hits"]["hits"]}
            if must and document not in found:
                newest_not_found.append(f"{document}: newest token {token} not found")
            if not must and document in found:
                older_found.append(f"{document}: older token {token} still found")
    return ContentReport(len(expected), newest_not_found, older_found)


def wait_for(check: Callable[[], ContentReport], timeout: float) -> tuple[ContentReport, float]:
    """Poll the content check until it passes or the deadline; the last report and the seconds taken."""
    started = time.monotonic()
    while True:
        report = check()
        if report.ok or time.monotonic() - started > timeout:
            return report, time.monotonic() - started
        time.sleep(5)
