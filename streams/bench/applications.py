"""Freshness through the real applications: pages edited through MediaWiki's API, replies posted
through Request Tracker's REST 2 API and notes edited through Tryton's JSON-RPC, at a steady rate, each
timed from the application's answer (it has committed) until a BM25 query finds the edit's own new
word in that document.

Runs only where the local stack runs the applications (`STREAMS_STACK_APPS`). Each application gets a
document of its own, created at the start and then edited again and again, as people edit one page or
answer one ticket many times; every edit adds a word no other text has.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streams.bench.cpu import cpu_seconds, cpu_used
from streams.bench.probes import BenchError, Progress, wait_for
from streams.bench.stats import summary
from streams.bench.timed_edits import EditLoad, freshness
from streams.settings import Settings


@dataclass
class AppEdit:
    source: str
    document_id: str
    word: str
    committed_at: float
    seen_at: float | None = None


class Writer:
    """One application's document and how to edit it: `edit(word)` returns once the application answered."""

    source: str
    document_id: str

    def edit(self, word: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class WikiWriter(Writer):
    source = "mediawiki"

    def __init__(self, settings: Settings, token: str) -> None:
        from streams.sources.write_applications import WikiApi
        from streams.stack.mediawiki import MediaWiki

        wiki = MediaWiki(settings)
        credentials = wiki.credentials()
        self.api = WikiApi(wiki.api_url)
        self.api.login(credentials["admin_user"], credentials["admin_password"])
        self.title = f"Streams freshness {token}"
        self.text = "== Freshness ==\nThis page is edited by the freshness benchmark.\n"
        self.api.edit(self.title, self.text, summary="freshness benchmark")
        self.document_id = f"mediawiki/page/{self.api.page(self.title)['pageid']}"

    def edit(self, word: str) -> None:
        self.text += f"\nThe replica {word} caught up after the checkpoint.\n"
        self.api.edit(self.title, self.text, summary="freshness benchmark")

    def close(self) -> None:
        self.api.close()


class TicketWriter(Writer):
    source = "rt"

    def __init__(self, settings: Settings, token: str) -> None:
        from streams.sources.write_applications import RtApi
        from streams.stack.request_tracker import QUEUE, RequestTracker

        rt = RequestTracker(settings)
        credentials = rt.credentials()
        self.api = RtApi(rt.rest2_url, credentials["admin_user"], credentials["admin_password"])
        subject, body = f"Freshness {token}", "The standby falls behind during the nightly load."
        ticket = self.api.create_ticket(QUEUE, subject, body, [f"bench.{token}@example.com"])
        self.ticket = ticket
        self.document_id = f"rt/ticket/{ticket}"

    def edit(self, word: str) -> None:
        self.api.correspond(self.ticket, f"The standby caught up: {word}. We keep watching it.")

    def close(self) -> None:
        self.api.close()


class NoteWriter(Writer):
    source = "tryton"

    def __init__(self, settings: Settings, token: str) -> None:
        from streams.stack.tryton import Tryton

        self.api = Tryton(settings).admin_api()
        party = self.api.create_party(f"Freshness Bench{token}", [("email", f"bench.{token}@example.com")])
        self.note = self.api.create_note(f"party.party,{party}", "Called about the renewal.")
        self.document_id = f"tryton/party/{party}"

    def edit(self, word: str) -> None:
        self.api.edit_note(self.note, f"Called about the renewal: {word}.")

    def close(self) -> None:
        self.api.close()


WRITERS: dict[str, Callable[[Settings, str], Writer]] = {
    "mediawiki": WikiWriter,
    "request-tracker": TicketWriter,
    "tryton": NoteWriter,
}


def _found(client: Any, alias: str, edit: AppEdit) -> bool:
    query = {
        "bool": {
            "filter": [
                {"term": {"kind": "chunk"}},
                {"term": {"document_id": edit.document_id}},
                {"term": {"visible": True}},
                {"match": {"text": edit.word}},
            ]
        }
    }
    return bool(client.count(index=alias, query=query)["count"])


def _wait_indexed(client: Any, alias: str, writer: Writer, timeout_s: float = 180.0) -> None:
    query = {"bool": {"filter": [{"term": {"kind": "chunk"}}, {"term": {"document_id": writer.document_id}}]}}
    if wait_for(lambda: bool(client.count(index=alias, query=query)["count"]), timeout_s, 0.5):
        return
    raise BenchError(f"{writer.document_id} was not indexed within {timeout_s:.0f}s: is the worker consuming?")


def run(
    settings: Settings, client: Any, progress: Progress, *, rate: float, duration_s: float, drain_s: float = 90.0
) -> dict[str, Any]:
    """`rate` edits per second in all, shared among the applications the stack runs."""
    apps = [app for app in settings.stack_apps if app in WRITERS]
    if not apps:
        return {"skipped": f"STREAMS_STACK_APPS names no application this scenario edits ({', '.join(WRITERS)})"}
    token = uuid.uuid4().hex[:10]
    writers = [WRITERS[app](settings, token) for app in apps]
    try:
        for writer in writers:
            _wait_indexed(client, settings.index_alias, writer)
        return _measure(settings, client, progress, writers, rate=rate, duration_s=duration_s, drain_s=drain_s)
    finally:
        for writer in writers:
            writer.close()


def _editing(writer: Writer) -> Callable[[int], AppEdit]:
    """Each edit adds a word no other text has, and is timed from the application's answer."""

    def edit(n: int) -> AppEdit:
        word = f"zqfresh{uuid.uuid4().hex[:12]}"
        writer.edit(word)
        return AppEdit(writer.source, writer.document_id, word, time.time())

    return edit


def _measure(
    settings: Settings,
    client: Any,
    progress: Progress,
    writers: list[Writer],
    *,
    rate: float,
    duration_s: float,
    drain_s: float,
) -> dict[str, Any]:
    cpu_before = cpu_seconds(settings)
    per_writer = max(1, int(rate * duration_s / len(writers)))
    load: EditLoad[AppEdit] = EditLoad()
    progress(
        f"applications: {per_writer} edits each through {', '.join(w.source for w in writers)}"
        f" at {rate}/s in all over {duration_s:.0f}s"
    )
    for writer in writers:
        load.start(writer.source, per_writer, len(writers) / rate, _editing(writer), label=writer.source)
    load.wait_searchable(
        lambda pending: [edit for edit in pending if _found(client, settings.index_alias, edit)],
        progress,
        lambda made, seen: f"applications: {made} edits answered, {seen} searchable",
        drain_s=drain_s,
    )
    made, failures = load.made, load.failures
    fresh = freshness(made)
    return {
        "rate_per_s": rate,
        "duration_s": duration_s,
        "events": len(made),
        "searchable": len(fresh),
        "never_searchable": len(made) - len(fresh),
        "edit_failures": len(failures),
        "edit_errors": failures[:5],
        "freshness_s": summary(fresh),
        "freshness_by_source_s": {
            w.source: summary(freshness(e for e in made if e.source == w.source)) for w in writers
        },
        "cpu_s": cpu_used(cpu_before, cpu_seconds(settings)),
        "method": "external: the application's API answered -> a BM25 query finds the edit's word in the"
        " document (0.2 s polls)",
    }
