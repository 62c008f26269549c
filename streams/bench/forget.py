"""Forget: a deletion request until search no longer finds the subject, on a quiet pipeline and
behind a backlog of pending changes; and before it, the subject access report (`streams locate`)
for each person of the quiet run, timed as the command makes it (every generation searched, the
dead letters scanned, the report published). Each subject is a fresh person with a ticket, a CRM contact, a
note about the contact, and another person's ticket that names them (full name and email) in its
text; "unsearchable" means no visible chunk names any of their identifiers and a phrase search for
their email or their name finds nothing (the mention redacted, not only their own documents gone)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streams import avro
from streams.agents.locate_commands import locate_subject, publish_report
from streams.bench.probes import (
    BenchError,
    MetricsSnapshot,
    Progress,
    WorkerLag,
    counter_delta,
    scrape,
    subject_chunk_count,
    wait_caught_up,
    wait_for,
)
from streams.bench.stats import summary
from streams.clients import async_elasticsearch_client, consumer_at_end, kafka_producer
from streams.settings import Settings
from streams.sources import edits
from streams.sources.connect import connect_postgres

# The phases a request's time is split into (see streams_deletion_phase_seconds_total); the
# first ones count toward unsearchable_at, tombstone and receipt come after it, and scan is the
# whole dead-letter scan, which runs beside the others.
PHASES = (
    "queue",
    "expand",
    "ledger",
    "gate",
    "refresh",
    "scrub",
    "delete",
    "redact",
    "verify",
    "tombstone",
    "receipt",
    "scan",
)


@dataclass
class Person:
    email: str
    name: str
    contact_id: int
    ticket_id: int
    mentioned_in: int  # another person's ticket that names them

    @property
    def identifiers(self) -> list[str]:
        return [f"email:{self.email}", f"contact_id:{self.contact_id}"]


def _letters(text: str) -> str:
    """A name made of letters only: a word with digits in it is never part of a written name."""
    return "".join(chr(ord("a") + int(ch, 36) % 26) for ch in text)


def make_person(tag: str, n: int) -> Person:
    email = f"bench.forget.{tag}.{n}@example.com"
    last = f"Forget{_letters(f'{tag}{n:03d}')}"
    ticket = edits.add_ticket(
        f"Invoice question from {email}",
        f"Please call me back about invoice {n}; reach me at {email}.",
        email,
        ["support"],
    )
    contact = edits.add_contact("Bench", last, email, ["sales"], title="Buyer")
    edits.add_note(contact, "bench.agent@example.com", f"Called Bench {last} about the renewal.", title="Call")
    other = edits.add_ticket(
        f"Renewal escalation {n}",
        f"Please keep Bench {last} ({email}) in copy about the renewal; the rest of this ticket stays.",
        "bench.colleague@example.com",
        ["support"],
    )
    return Person(email, f"Bench {last}", contact, ticket, other)


def mention_chunk_count(client: Any, alias: str, phrases: list[str]) -> int:
    """Visible chunks whose text, title or section holds any of `phrases` (no subject filter)."""
    should = [{"multi_match": {"query": p, "type": "phrase", "fields": ["text", "title", "section"]}} for p in phrases]
    query = {
        "bool": {
            "filter": [{"term": {"kind": "chunk"}}, {"term": {"visible": True}}],
            "should": should,
            "minimum_should_match": 1,
        }
    }
    return int(client.count(index=alias, query=query)["count"])


def _searchable(client: Any, alias: str, person: Person) -> tuple[int, int]:
    return (
        subject_chunk_count(client, alias, person.identifiers),
        mention_chunk_count(client, alias, [person.email, person.name]),
    )


def _phase_means(before: MetricsSnapshot | None, after: MetricsSnapshot | None, requests: int) -> dict[str, float]:
    """Mean wall seconds per request in each phase, from the worker's counters."""
    if before is None or after is None or not requests:
        return {}
    name = "streams_deletion_phase_seconds_total"
    return {phase: round(counter_delta(before, after, name, phase) / requests, 3) for phase in PHASES}


def _scrape(settings: Settings) -> MetricsSnapshot | None:
    try:
        return scrape(settings)
    except BenchError:
        return None


class Receipts:
    """Deletion receipts published from now on, keyed by request id, read in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.received: dict[str, dict[str, Any]] = {}
        self._registry_url = settings.schema_registry_url
        self._stop = threading.Event()
        self._consumer = consumer_at_end(settings, [settings.receipts_topic], "bench")
        self._thread = threading.Thread(target=self._run, name="bench-receipts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._consumer.poll(0.5)
            value = None if message is None or message.error() else message.value()
            if value is None:
                continue
            try:
                receipt = avro.decode("deletion_receipt", value, self._registry_url)
            except Exception:  # not ours to judge here
                continue
            self.received.setdefault(receipt["request_id"], receipt)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


def _count_is(client: Any, alias: str, person: Person, done: Callable[[tuple[int, int]], bool]) -> Callable[[], bool]:
    return lambda: done(_searchable(client, alias, person))


def _publish(producer: Any, settings: Settings, person: Person) -> tuple[str, datetime]:
    request_id = f"bench-{uuid.uuid4().hex}"
    requested_at = datetime.now(UTC)
    record = {
        "request_id": request_id,
        "subject": person.email,
        "subject_kind": "email",
        "requested_by": "streams bench",
        "requested_at": requested_at,
        "reason": "benchmark",
    }
    producer.produce(
        settings.deletion_topic,
        key=request_id.encode(),
        value=avro.encode("deletion_request", record, settings.schema_registry_url),
    )
    producer.flush(10)
    return request_id, requested_at


def _forget_all(
    settings: Settings,
    client: Any,
    producer: Any,
    people: list[Person],
    timeout_s: float,
    progress: Progress,
    label: str,
    lag: WorkerLag | None = None,
    pending: list[int] | None = None,
) -> tuple[list[float], dict[str, datetime], list[str]]:
    """Forget each person in turn, timing request -> unsearchable. With `lag`, also notes in
    `pending` how many changes the worker had not yet committed at each request."""
    times: list[float] = []
    requests: dict[str, datetime] = {}
    failures: list[str] = []
    for person in people:
        if lag is not None and pending is not None:
            pending.append(lag.behind())
        request_id, requested_at = _publish(producer, settings, person)
        requests[request_id] = requested_at
        start = requested_at.timestamp()
        gone = wait_for(_count_is(client, settings.index_alias, person, lambda n: n == (0, 0)), timeout_s, 0.1)
        if gone:
            times.append(time.time() - start)
            progress(f"forget{label}: {person.email} unsearchable after {times[-1]:.2f}s")
        else:
            failures.append(f"{person.email} still searchable after {timeout_s:.0f}s")
            progress(f"forget{label}: {failures[-1]}")
    return times, requests, failures


def _locate_all(settings: Settings, people: list[Person], progress: Progress) -> tuple[list[float], list[str]]:
    """Time `streams locate` for each person: the report must list their ticket, contact and note."""

    async def timed() -> tuple[list[float], list[str]]:
        times: list[float] = []
        failures: list[str] = []
        client = async_elasticsearch_client(settings)
        try:
            for person in people:
                started = time.perf_counter()
                report = await locate_subject(settings, client, person.email, "email", "bench")
                publish_report(settings, report)
                times.append(time.perf_counter() - started)
                documents = {finding.document_id for finding in report.findings}
                if len(documents) < 3:
                    failures.append(f"locate {person.email}: {len(documents)} documents listed, expected at least 3")
                progress(f"forget: locate {person.email}: {len(report.findings)} findings in {times[-1]:.2f}s")
        finally:
            await client.close()
        return times, failures

    return asyncio.run(timed())


def _backlog(settings: Settings, comments: int) -> int:
    """Insert `comments` ticket comments over 20 new tickets at once: a backlog for the indexer."""
    tickets = [
        edits.add_ticket(
            f"Bench backlog ticket {n}", "Load for the forget benchmark.", "bench.load@example.com", ["support"]
        )
        for n in range(20)
    ]
    rows = [
        (tickets[i % len(tickets)], "bench.load@example.com", f"Backlog comment {i}: still seeing the timeout.", True)
        for i in range(comments)
    ]
    with connect_postgres(settings.dsn("tickets"), name="tickets") as pg:
        with pg.cursor() as cur:
            cur.executemany(
                "INSERT INTO ticket_comments (ticket_id, author_email, body, public) VALUES (%s, %s, %s, %s)", rows
            )
    return len(rows)


def run(
    settings: Settings, client: Any, progress: Progress, *, requests: int, backlog: int, timeout_s: float = 180.0
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    progress(f"forget: creating {2 * requests} people (ticket + contact + note each, and a ticket naming them)")
    people = [make_person(tag, n) for n in range(2 * requests)]
    quiet, behind = people[:requests], people[requests:]
    for person in people:
        # their ticket, contact and note; their email and name in their own and in the other ticket
        indexed = _count_is(client, settings.index_alias, person, lambda n: n[0] >= 3 and n[1] >= 2)
        if not wait_for(indexed, timeout_s):
            raise BenchError(f"{person.email} was not indexed within {timeout_s:.0f}s (its documents and a mention)")
    progress("forget: every subject is searchable")
    locate_times, locate_failures = _locate_all(settings, quiet, progress)
    receipts = Receipts(settings)
    producer = kafka_producer(settings)
    try:
        start_metrics = _scrape(settings)
        quiet_times, quiet_requests, quiet_failures = _forget_all(
            settings, client, producer, quiet, timeout_s, progress, ""
        )
        wait_for(lambda: all(r in receipts.received for r in quiet_requests), 30, 0.2)
        quiet_metrics = _scrape(settings)
        progress(f"forget: inserting a backlog of {backlog} ticket comments")
        inserted = _backlog(settings, backlog)
        time.sleep(2)  # let Debezium publish and the worker start on it
        pending: list[int] = []
        with WorkerLag(settings) as lag:
            backlog_times, backlog_requests, backlog_failures = _forget_all(
                settings, client, producer, behind, timeout_s, progress, " (backlog)", lag, pending
            )
        wait_for(lambda: all(r in receipts.received for r in {**quiet_requests, **backlog_requests}), 30, 0.5)
        backlog_metrics = _scrape(settings)
        # Leave the stack as found: the next user of the shared worker group must not inherit the backlog.
        drained_s = wait_caught_up(settings, progress)
    finally:
        receipts.close()

    def receipt_times(sent: dict[str, datetime]) -> list[float]:
        out = []
        for request_id, requested_at in sent.items():
            receipt = receipts.received.get(request_id)
            if receipt is not None:
                out.append((receipt["unsearchable_at"] - requested_at).total_seconds())
        return out

    return {
        "requests": requests,
        "locate_s": summary(locate_times),
        "unsearchable_s": summary(quiet_times),
        "backlog_unsearchable_s": summary(backlog_times),
        "receipt_unsearchable_s": summary(receipt_times(quiet_requests)),
        "receipt_backlog_unsearchable_s": summary(receipt_times(backlog_requests)),
        "receipts_received": sum(r in receipts.received for r in {**quiet_requests, **backlog_requests}),
        "backlog_comments": inserted,
        # Changes the worker had not yet committed at each backlog request (read from Kafka).
        "backlog_pending_at_requests": pending,
        "backlog_drained_s": round(drained_s, 1),
        # Where a request's time goes, mean seconds per request by phase (the worker's counters).
        "phase_mean_s": _phase_means(start_metrics, quiet_metrics, len(quiet_requests)),
        "backlog_phase_mean_s": _phase_means(quiet_metrics, backlog_metrics, len(backlog_requests)),
        "failures": locate_failures + quiet_failures + backlog_failures,
        "method": (
            "external: request published -> count of visible chunks naming the subject's identifiers"
            " is 0 and a phrase search for their email or name over text, title and section counts 0"
            " (_count, 0.1 s polls)"
        ),
    }
