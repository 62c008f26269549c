"""`make demo`: the whole loop on the local stack, narrated.

stack up -> connectors -> seed -> worker -> search -> live edits through the real applications the
stack runs (STREAMS_STACK_APPS, all three by default: a page edited in MediaWiki, a reply in Request
Tracker, a lead and its note in Tryton), and in the example sources where they are configured
(STREAMS_EXAMPLE_SOURCES=1: rows written by SQL, their Debezium events shown as they arrive), with the
seconds until search reflects each -> forget a person -> freshness. The stack is left running
(`streams stack down` stops it); the worker started here stops.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer
from elasticsearch import Elasticsearch

from streams.agents.worker_process import running_worker
from streams.auth import CredentialsConfigError, local_key
from streams.clients import consumer_at_end, elasticsearch_client
from streams.polling import poll
from streams.settings import Settings, configured_mappings, get_settings
from streams.sources import edits
from streams.sources.seed import APPLICATION_SOURCES, EXAMPLE_SOURCES, examples_not_configured
from streams.sources.write_applications import RtApi, WikiApi
from streams.stack import tryton
from streams.stack.mediawiki import MediaWiki
from streams.stack.request_tracker import QUEUE, RequestTracker
from streams.stack.watch_connectors import background_watch
from streams.topics import change_topics


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "streams.cli", *args], check=True)


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 120.0) -> float:
    started = time.monotonic()
    if not poll(check, timeout_s, 0.1):
        raise SystemExit(f"gave up waiting for {what} after {timeout_s:.0f}s")
    return time.monotonic() - started


def hits(es: Elasticsearch, settings: Settings, query: dict[str, Any]) -> int:
    return int(es.count(index=settings.index_alias, query=query)["count"])


def visible_with(document_id: str, phrase: str) -> dict[str, Any]:
    return {
        "bool": {
            "filter": [
                {"term": {"document_id": document_id}},
                {"term": {"visible": True}},
                {"match_phrase": {"text": phrase}},
            ]
        }
    }


def change_consumer(settings: Settings) -> Consumer:
    return consumer_at_end(settings, change_topics(configured_mappings(settings), settings), "demo")


def show_events(consumer: Consumer, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        value = message.value()
        if value is None:
            print(f"   {message.topic():32} tombstone key={(message.key() or b'').decode()}")
            continue
        envelope = json.loads(value)
        envelope = envelope.get("payload", envelope)
        row = envelope.get("after") or envelope.get("before") or {}
        summary = {k: v for k, v in row.items() if isinstance(v, str | int) and len(str(v)) < 40}
        print(f"   {message.topic():32} op={envelope.get('op')} {json.dumps(summary)[:110]}")


def search_api(settings: Settings, query: str, key: str | None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{settings.worker_url()}/search?{urllib.parse.urlencode({'q': query, 'k': 3})}")
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(json.load(response))
    except urllib.error.HTTPError as exc:
        return exc.code, dict(json.load(exc))


def show_search_api(settings: Settings, query: str) -> None:
    """The worker's /search: no credential is refused; a local key sees its groups' documents only (the
    `staff` key MediaWiki's main namespace and RT's General queue, the `support` key the example sources'
    support group)."""
    status, body = search_api(settings, query, None)
    print(f"   GET /search without a credential: {status} {body.get('error_description', '')}")
    name = "local-staff" if _applications(settings) else "local-support"
    try:
        key = local_key(settings, name)
    except CredentialsConfigError as exc:  # a key file generated before that key existed
        print(f"   (no {name} key: {exc}; delete the file and restart the stack for a new one)")
        return
    status, body = search_api(settings, query, key)
    print(f"   GET /search as {name} (groups {body.get('groups')}): {status}")
    for hit in body.get("hits", []):
        print(f"      [{hit['source']}] {hit['title']}")


def main() -> None:
    settings = get_settings()
    say(
        "1. the local stack (Kafka, Kafka Connect + Debezium, Elasticsearch, PostgreSQL, MariaDB, and the"
        f" applications: {', '.join(settings.stack_apps) or 'none'})"
    )
    run("stack", "up")
    say("2. Debezium connectors")
    run("connectors", "register")
    applications = [source for source in APPLICATION_SOURCES if source in settings.sources]
    if applications:
        say(f"3. seed {', '.join(applications)} through their own APIs (as the people who wrote them)")
        run("seed", "--docs", str(APPLICATION_DOCS * len(applications)), "--source", ",".join(applications))
    if _examples(settings):
        say("3b. seed the example sources (STREAMS_EXAMPLE_SOURCES): the wiki, the tickets and the CRM")
        run("seed", "--docs", str(EXAMPLE_DOCS), "--source", ",".join(EXAMPLE_SOURCES))
    if not applications and not _examples(settings):
        raise SystemExit("no source to show: STREAMS_STACK_APPS=none and STREAMS_EXAMPLE_SOURCES is off")
    say("4. the worker, and the connectors' watch (restarts a failed or stalled connector, logs why)")
    watch_log = settings.stack_home / "watch-demo.log"
    with (
        background_watch(watch_log),
        running_worker(settings, lambda line: print(f"   {line}"), settings.stack_home / "worker-demo.log"),
    ):
        print(f"   watch log: {watch_log}")
        print(
            f"   worker at {settings.worker_url()} (metrics: /metrics, health: /health, search: /search?q=... with"
            f" 'Authorization: Bearer <key>', keys in {settings.search_api_keys_path()})"
        )
        show_the_loop(settings)
    say("done: the stack is still running (`.venv/bin/streams stack down` stops it)")


def show_the_loop(settings: Settings) -> None:
    es = elasticsearch_client(settings)
    try:
        wait_until(
            "the initial snapshot to be indexed",
            lambda: (
                hits(es, settings, {"term": {"kind": "state"}})
                >= EXAMPLE_DOCS * _examples(settings) + APPLICATION_DOCS * _applications(settings)
            ),
            900,
        )
        print(f"   {hits(es, settings, {'term': {'kind': 'chunk'}})} chunks indexed")
        say("5. search: 'deadlock detected'")
        run("search", "deadlock detected", "--k", "3")
        show_search_api(settings, "deadlock detected")
        marker = f"zebra{uuid.uuid4().hex[:6]}"

        if "mediawiki" in settings.sources:
            say("6. MediaWiki: a user edits a page through the wiki's API")
            edit_in_mediawiki(settings, es, marker)
        if "rt" in settings.sources:
            say("6b. Request Tracker: an agent replies to a ticket through RT's REST 2 API")
            reply_in_request_tracker(settings, es, marker)
        if "tryton" in settings.sources:
            say("6c. Tryton: a salesperson records a lead and its note through Tryton's JSON-RPC API")
            lead_in_tryton(settings, es, marker)
        if _examples(settings):
            say("6d. the example sources: live edits by SQL, their Debezium events, and the seconds until search")
            edit_examples(settings, es, marker)

        say(f"7. forget dana.{marker}@acme.example (wherever the sources name them)")
        run("forget", f"dana.{marker}@acme.example", "--wait")

        say("8. freshness per source (source commit -> searchable)")
        run("freshness")
    finally:
        es.close()


def edit_examples(settings: Settings, es: Elasticsearch, marker: str) -> None:
    consumer = change_consumer(settings)
    try:
        rng = random.Random()
        page_id = edits.new_wiki_page(
            f"Demo page {marker}", f"== Intro ==\n\nA page about {marker}.", ["engineering"], "demo@example.com"
        )
        ticket_id = edits.add_ticket(
            f"Printer on fire {marker}", f"The printer reports {marker}.", "demo.customer@acme.example", ["support"]
        )
        contact_id = edits.add_contact("Dana", "Demo", f"dana.{marker}@acme.example")
        note_id = edits.add_note(contact_id, "seller@example.com", f"Call about {marker} renewal.")
        for document_id in (f"wiki/page/{page_id}", f"tickets/ticket/{ticket_id}", f"crm/note/{note_id}"):

            def searchable(d: str = document_id) -> bool:
                return hits(es, settings, visible_with(d, marker)) > 0

            took = wait_until(document_id, searchable)
            print(f"   {document_id} searchable after {took:.2f}s")
        edits.edit_wiki_paragraph(page_id, rng)
        edits.close_ticket(ticket_id)
        edits.delete_note(note_id)
        took = wait_until(
            "the note to disappear", lambda: hits(es, settings, visible_with(f"crm/note/{note_id}", marker)) == 0
        )
        print(f"   crm/note/{note_id} deleted: unsearchable after {took:.2f}s")
        show_events(consumer, 3.0)
    finally:
        consumer.close()


APPLICATION_DOCS = 20  # per application: each page and ticket is several API calls
EXAMPLE_DOCS = 300  # over the three example sources


def _applications(settings: Settings) -> int:
    return len(set(APPLICATION_SOURCES) & set(settings.sources))


def _examples(settings: Settings) -> bool:
    return not examples_not_configured(settings.sources)


def edit_in_mediawiki(settings: Settings, es: Elasticsearch, marker: str) -> None:
    wiki = MediaWiki(settings)
    user, password = f"Demo {marker}", uuid.uuid4().hex
    wiki.create_user(user, password, email=f"demo.{marker}@example.com")
    title = f"Standby servers {marker}"
    with WikiApi(wiki.api_url) as api:
        api.login(user, password)
        api.edit(title, f"== Standby ==\nA hot standby of {marker} replays WAL from the primary.\n", "demo")
        document_id = f"mediawiki/page/{api.page(title)['pageid']}"
        took = wait_until(document_id, lambda: hits(es, settings, visible_with(document_id, marker)) > 0, 180)
        print(f"   {document_id} ({title!r}, saved by {user!r}) searchable after {took:.2f}s")
        second = f"promoted{marker}"
        api.edit(title, f"== Standby ==\nThe standby of {marker} was {second} with pg_promote().\n", "demo")
    took = wait_until(f"{document_id}'s edit", lambda: hits(es, settings, visible_with(document_id, second)) > 0)
    print(f"   edited: searchable by {second!r} after {took:.2f}s")


def reply_in_request_tracker(settings: Settings, es: Elasticsearch, marker: str) -> None:
    rt = RequestTracker(settings)
    credentials = rt.credentials()
    with RtApi(rt.rest2_url, credentials["admin_user"], credentials["admin_password"]) as api:
        ticket = api.create_ticket(
            QUEUE,
            f"Replica lagging {marker}",
            "Our replica is hours behind.",
            [f"Dana Demo <dana.{marker}@acme.example>"],
        )
        document_id = f"rt/ticket/{ticket}"
        took = wait_until(document_id, lambda: hits(es, settings, visible_with(document_id, "hours behind")) > 0, 180)
        print(f"   {document_id} (created in RT) searchable after {took:.2f}s")
        api.correspond(
            ticket, f"Raise wal_keep_size; the replica of {marker} then catches up.\n\n> Our replica is hours behind."
        )
    took = wait_until(
        f"{document_id}'s reply", lambda: hits(es, settings, visible_with(document_id, "wal_keep_size")) > 0
    )
    print(f"   reply: searchable by 'wal_keep_size' after {took:.2f}s")


def lead_in_tryton(settings: Settings, es: Elasticsearch, marker: str) -> None:
    with tryton.Tryton(settings).admin_api() as api:
        company = api.ensure_company(tryton.COMPANY)
        party = api.create_party(f"Dana Demo {marker}", [("email", f"dana.{marker}@acme.example")])
        opportunity = api.create_opportunity(
            party, company, f"Replica upgrade for {marker}", "Two sites, a standby in each."
        )
        document_id = f"tryton/opportunity/{opportunity}"
        took = wait_until(
            document_id, lambda: hits(es, settings, visible_with(document_id, "replica upgrade")) > 0, 180
        )
        print(f"   {document_id} (a lead of tryton/party/{party}) searchable after {took:.2f}s")
        api.create_note(f"sale.opportunity,{opportunity}", "Budget approved for the standby hardware.")
    took = wait_until(
        f"{document_id}'s note", lambda: hits(es, settings, visible_with(document_id, "budget approved")) > 0
    )
    print(f"   note: searchable by 'budget approved' after {took:.2f}s")


if __name__ == "__main__":
    main()
