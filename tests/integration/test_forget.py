"""Forgetting people through the real stack: a deletion request (Avro, on the deletion topic) makes every
chunk about the subject unsearchable, a receipt says so, and neither replays nor a re-snapshot nor a
worker crash mid-request bring anything back. Each test seeds its own uniquely named person."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from streams import avro
from streams.bench.cpu import is_worker
from streams.settings import PROJECT_ROOT, Settings
from streams.sources import edits
from streams.sources.connect import connect_postgres
from tests.integration.conftest import start_detached_worker
from tests.integration.helpers import (
    document_chunks,
    es_client,
    found_documents,
    hybrid,
    knn_documents,
    messages_after,
    metrics_value,
    produce,
    row_events,
    topic_end_offsets,
    unique,
    verification_hits,
    visible_chunks,
    wait_for_keyed_message,
    wait_processed,
    wait_until,
)

pytestmark = pytest.mark.integration


@dataclass
class Person:
    email: str
    words: dict[str, str]  # document id -> a word only that document contains
    ticket_id: int
    contact_id: int
    note_id: int
    page_id: int

    @property
    def documents(self) -> list[str]:
        return list(self.words)


def _seed_person(es: Any) -> Person:
    email = f"forget.{unique('p')}@example.com"
    w_page, w_ticket, w_contact, w_note = unique(), unique(), unique(), unique()
    page_id = edits.new_wiki_page(
        f"Notes {unique('t')}", f"== Findings ==\n\nThe {w_page} cache was tuned by hand.", ["engineering"], email
    )
    ticket_id = edits.add_ticket(f"Access {w_ticket}", f"Please grant {w_ticket} access.", email, ["support"])
    contact_id = edits.add_contact("Frida", w_contact.title(), email, ["sales"])
    note_id = edits.add_note(contact_id, f"rep.{unique('r')}@example.com", f"Frida asked about the {w_note} plan.")
    person = Person(
        email,
        {
            f"wiki/page/{page_id}": w_page,
            f"tickets/ticket/{ticket_id}": w_ticket,
            f"crm/contact/{contact_id}": w_contact.title(),
            f"crm/note/{note_id}": w_note,
        },
        ticket_id,
        contact_id,
        note_id,
        page_id,
    )
    for doc, word in person.words.items():
        wait_until(lambda: doc in found_documents(es, word), timeout=90)  # noqa: B023
        assert doc in found_documents(es, word), f"{doc} was never indexed"
    return person


def _control_ticket(es: Any) -> tuple[str, str]:
    word = unique()
    email = f"ctl.{unique('c')}@example.com"
    ticket_id = edits.add_ticket(f"Control {word}", f"Control ticket {word}.", email, ["support"])
    doc = f"tickets/ticket/{ticket_id}"
    wait_until(lambda: doc in found_documents(es, word), timeout=90)
    return doc, word


def _request_forget(settings: Settings, email: str) -> tuple[str, dict[int, int]]:
    """Publish a deletion request as compliance would; its request id and the receipts topic's end before."""
    request_id = f"test-{uuid.uuid4()}"
    start = topic_end_offsets(settings.receipts_topic)
    request = {
        "request_id": request_id,
        "subject": email,
        "subject_kind": "email",
        "requested_by": "integration-tests",
        "requested_at": datetime.now(UTC),
        "reason": "right to be forgotten (test)",
    }
    value = avro.encode("deletion_request", request, settings.schema_registry_url)
    produce(settings.deletion_topic, [(request_id.encode(), value)])
    return request_id, start


def _receipt(settings: Settings, request_id: str, start: dict[int, int], timeout: float = 120.0) -> dict[str, Any]:
    message = wait_for_keyed_message(settings.receipts_topic, request_id.encode(), start, timeout=timeout)
    assert message is not None, f"no receipt for {request_id} on {settings.receipts_topic} within {timeout}s"
    return avro.decode("deletion_receipt", message.value(), settings.schema_registry_url)


def purged_receipt(settings: Settings, request_id: str, start: dict[int, int], timeout: float) -> dict[str, Any]:
    def look() -> dict[str, Any] | None:
        for message in messages_after(settings.receipts_topic, start):
            if message.key() == request_id.encode():
                receipt = avro.decode("deletion_receipt", message.value(), settings.schema_registry_url)
                if receipt["status"] == "purged":
                    return dict(receipt)
        return None

    found = wait_until(look, timeout=timeout, interval=2.0)
    assert found, f"no purged receipt for {request_id} within {timeout:.0f}s; the workers said:\n{_purge_log(settings)}"
    return found


def _purge_log(settings: Settings) -> str:
    """What the test workers logged about purges (their log files), for a failure to explain itself."""
    lines = [
        f"{log.name}: {line}"
        for log in sorted(settings.stack_home.glob("worker-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "purge" in line.lower() or "force merge" in line.lower()
    ]
    return "\n".join(lines[-40:]) or "(nothing about purges)"


def _assert_forgotten(es: Any, person: Person, vectors: list[list[float]]) -> None:
    es.indices.refresh(index="streams-chunks")
    for doc, word in person.words.items():
        assert document_chunks(es, doc) == [], f"{doc} still has chunks"
        assert doc not in found_documents(es, word), f"BM25 finds {doc}"
        assert doc not in {h["document_id"] for h in hybrid(word, k=50)["hits"]}, f"hybrid search finds {doc}"
    ours = set(person.documents)
    assert not found_documents(es, person.email) & ours
    assert not {h["document_id"] for h in hybrid(person.email, k=50)["hits"]} & ours
    hybrid_text = json.dumps(hybrid(person.email, k=50)["hits"])  # the hits, not the echoed query
    assert person.email not in hybrid_text
    subject = f"email:{person.email}"
    count = es.count(index="streams-chunks", query={"term": {"subjects": subject}})["count"]
    assert count == 0
    for vector in vectors:  # kNN with the very vectors their chunks had: nearest neighbours are others'
        hits = knn_documents(es, vector)
        # By content, not only by id: a concurrent reset of the sources (a benchmark) can reuse ids.
        assert not [h for h in hits if any(w in h.get("text", "") for w in person.words.values())]
        assert not [h for h in hits if subject in h.get("subjects", [])]


def _vectors(es: Any, person: Person) -> list[list[float]]:
    return [c["vector"] for doc in person.documents for c in document_chunks(es, doc, with_vector=True)][:8]


def test_forget_a_person_across_all_sources(worker: Settings) -> None:
    es = es_client(worker)
    person = _seed_person(es)
    control_doc, control_word = _control_ticket(es)
    vectors = _vectors(es, person)
    assert vectors

    request_id, start = _request_forget(worker, person.email)
    receipt = _receipt(worker, request_id, start)

    assert receipt["request_id"] == request_id and receipt["subject"] == person.email
    assert f"email:{person.email}" in receipt["identifiers"]
    assert f"contact_id:{person.contact_id}" in receipt["identifiers"]
    removed = {r["source"]: r for r in receipt["removed"] if r["chunks"]}
    assert set(removed) == {"wiki", "tickets", "crm"}, receipt["removed"]
    assert sum(r["chunks"] for r in receipt["removed"]) >= 4
    assert sum(r["documents"] for r in receipt["removed"]) >= 4
    assert receipt["state_records_removed"] > 0
    assert verification_hits(receipt) == (0, 0, 0, 0)
    assert receipt["unsearchable_at"] >= receipt["received_at"]

    _assert_forgotten(es, person, vectors)
    assert control_doc in found_documents(es, control_word), "another person's ticket was touched"
    assert visible_chunks(es, control_doc)


def _suppressed_or_stale() -> float:
    return metrics_value("streams_events_total", {"outcome": "stale"}) + metrics_value(
        "streams_events_total", {"outcome": "suppressed"}
    )


def _pg_current_lsn(dsn: str) -> int:
    with connect_postgres(dsn, name="lsn") as conn:
        row = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()
        assert row is not None
        return int(row[0])


def test_replays_and_a_resnapshot_do_not_bring_a_forgotten_person_back(worker: Settings) -> None:
    """After forgetting: (1) every captured change event of the person's rows, re-produced to its Debezium
    topic (a replay from offset zero); (2) a re-snapshot of the tickets and CRM rows.

    What (2) simulates: Debezium's snapshot reads (`op: "r"`, `source.snapshot: "true"`) of the person's
    rows as they are now in the databases, at a log position newer than every change so far (a
    re-snapshot carries the current LSN). They are built from the real captured envelopes with the
    current rows read from PostgreSQL and `source.lsn` set to `pg_current_wal_lsn()`, because triggering
    a real incremental snapshot needs a signalling table that the connector configs do not set up.
    Such events are *newer* than the worker's state, so only the suppression ledger keeps them out.
    """
    es = es_client(worker)
    person = _seed_person(es)
    vectors = _vectors(es, person)
    request_id, start = _request_forget(worker, person.email)
    _receipt(worker, request_id, start)
    _assert_forgotten(es, person, vectors)

    replays: dict[str, list[tuple[bytes, bytes | None]]] = {
        "tickets.public.tickets": row_events("tickets.public.tickets", {"id": person.ticket_id}),
        "crm.public.contacts": row_events("crm.public.contacts", {"id": person.contact_id}),
        "crm.public.notes": row_events("crm.public.notes", {"id": person.note_id}),
        "wiki.wiki.page": row_events("wiki.wiki.page", {"page_id": person.page_id}),
    }
    revision_events = [e for e in row_events_by_parent("wiki.wiki.revision", "rev_page", person.page_id)]
    replays["wiki.wiki.revision"] = revision_events
    assert all(replays.values()), {t: len(e) for t, e in replays.items()}

    resnapshot: dict[str, list[tuple[bytes, bytes | None]]] = {}
    for topic, dsn, table, key in (
        ("tickets.public.tickets", worker.dsn("tickets"), "tickets", person.ticket_id),
        ("crm.public.contacts", worker.dsn("crm"), "contacts", person.contact_id),
        ("crm.public.notes", worker.dsn("crm"), "notes", person.note_id),
    ):
        raw_key, value = [e for e in replays[topic] if e[1]][-1]
        envelope = json.loads(value)
        with connect_postgres(dsn, name="resnapshot") as conn:
            cur = conn.execute(f"SELECT row_to_json(t) FROM {table} t WHERE id = %s", (key,))
            row = cur.fetchone()
        assert row is not None
        current = row[0]
        after = {column: current.get(column, old) for column, old in envelope["after"].items()}
        for column in ("created_at", "updated_at"):  # keep Debezium's encoding of timestamps
            if column in envelope["after"]:
                after[column] = envelope["after"][column]
        source = {
            **envelope["source"],
            "snapshot": "true",
            "lsn": _pg_current_lsn(dsn),
            "ts_ms": int(time.time() * 1000),
        }
        for precise in ("ts_us", "ts_ns"):
            source.pop(precise, None)
        snapshot_event = {**envelope, "op": "r", "before": None, "after": after, "source": source}
        resnapshot[topic] = [(raw_key, json.dumps(snapshot_event).encode())]

    judged_before = _suppressed_or_stale()
    total = 0
    delivered: list[tuple[str, list[tuple[int, int]]]] = []
    for topic, records in replays.items():
        delivered.append((topic, produce(topic, records)))
        total += sum(1 for _, v in records if v)
    for topic, records in resnapshot.items():
        delivered.append((topic, produce(topic, records)))
        total += len(records)
    # Once the worker has committed past them, whatever it did with them is in the index.
    for topic, offsets in delivered:
        assert wait_processed(topic, offsets, timeout=90), f"the worker did not commit past {offsets} on {topic}"
    judged = _suppressed_or_stale() - judged_before
    assert judged >= total, f"{judged} of {total} replayed events were judged suppressed or stale"

    _assert_forgotten(es, person, vectors)


def row_events_by_parent(topic: str, parent_column: str, parent_id: int) -> list[tuple[bytes, bytes | None]]:
    from tests.integration.helpers import topic_messages

    found = []
    for message in topic_messages(topic):
        if not message.value():
            continue
        envelope = json.loads(message.value())
        row = envelope.get("after") or envelope.get("before") or {}
        if row.get(parent_column) == parent_id:
            found.append((message.key(), message.value()))
    return found


def _worker_pids() -> list[int]:
    """`streams worker` processes of this checkout (cwd is the project root)."""
    return [
        process.pid
        for process in psutil.process_iter(["cmdline", "cwd"])
        if process.pid != os.getpid()
        and is_worker(process.info["cmdline"] or [])
        and process.info["cwd"]
        and Path(process.info["cwd"]).resolve() == PROJECT_ROOT
    ]


def test_bad_deletion_requests_are_refused_with_the_reason_and_do_not_block_the_lane(worker: Settings) -> None:
    """Bytes that are not a request and a request with a blank subject, queued ahead of a good request in
    the same partition: each gets a dead letter with the reason (the blank one a `rejected` receipt
    too), and the good request behind them is carried out."""
    es = es_client(worker)
    person = _seed_person(es)
    good_id, blank_id = f"test-{uuid.uuid4()}", f"test-{uuid.uuid4()}"

    def request(request_id: str, subject: str) -> bytes:
        body = {
            "request_id": request_id,
            "subject": subject,
            "subject_kind": "email",
            "requested_by": "integration-tests",
            "requested_at": datetime.now(UTC),
            "reason": "test",
        }
        return avro.encode("deletion_request", body, worker.schema_registry_url)

    start = topic_end_offsets(worker.receipts_topic)
    dead_start = topic_end_offsets(worker.dead_letter_topic)
    key = good_id.encode()  # one key: one partition, in this order
    produce(
        worker.deletion_topic,
        [(key, b"not an Avro request"), (key, request(blank_id, "   ")), (key, request(good_id, person.email))],
    )

    rejected = _receipt(worker, blank_id, start)
    assert rejected["status"] == "rejected" and "names no subject" in (rejected["error"] or ""), rejected
    receipt = _receipt(worker, good_id, start)
    assert receipt["status"] == "unsearchable" and receipt["error"] is None, receipt
    assert set(person.documents) <= {doc for r in receipt["removed"] for doc in r["document_ids"]}

    dead = [
        avro.decode("dead_letter", m.value())
        for m in messages_after(worker.dead_letter_topic, dead_start)
        if m.value() is not None and m.key() is not None
    ]
    ours = [r for r in dead if r["origin_topic"] == worker.deletion_topic and r["key"] == key]
    assert len(ours) == 2 and {r["stage"] for r in ours} == {"forget"}, ours
    assert any("names no subject" in r["error"] for r in ours)


def test_worker_killed_mid_request_forgets_after_restart(worker: Settings) -> None:
    """Crash safety of the deletion lane: publish a request, SIGKILL the running worker at once (whoever
    started it: it is this checkout's `streams worker`), start a new worker (`python -m streams.cli
    worker`, log in <stack_home>/worker-restarted.log), and expect the receipt and zero hits: the
    request's offset had not moved, so the new worker handles it again. Then SIGKILL that worker inside
    the purge window and expect the next one to run the pending purge and publish the purged receipt.
    The last worker is left running (start_new_session) so that later tests and the developer still
    have one."""
    es = es_client(worker)
    person = _seed_person(es)
    vectors = _vectors(es, person)
    pids = _worker_pids()
    assert pids, "no running `streams worker` of this checkout found"
    # Every chunk the request may remove: those naming the person, and every chunk of their documents.
    es.indices.refresh(index=worker.index_alias)
    identifiers = [f"email:{person.email}", f"contact_id:{person.contact_id}"]
    theirs = {
        "bool": {
            "filter": [{"term": {"kind": "chunk"}}],
            "minimum_should_match": 1,
            "should": [{"terms": {"subjects": identifiers}}, {"terms": {"document_id": person.documents}}],
        }
    }
    naming = es.count(index=worker.index_alias, query=theirs)["count"]
    assert naming >= len(person.documents)

    request_id, start = _request_forget(worker, person.email)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not set(_worker_pids()) & set(pids), timeout=30)

    log_path = worker.stack_home / "worker-restarted.log"
    start_detached_worker(worker, "worker-restarted.log")

    receipt = _receipt(worker, request_id, start, timeout=400)
    assert receipt["verification"]["subject_field_hits"] == 0
    # The killed attempt may have removed some or all of the chunks already; it saved what it was about
    # to delete before writing (streams/forget/progress.py), so the receipt still lists every document of theirs.
    removed = sum(r["chunks"] for r in receipt["removed"])
    assert removed <= naming, f"the receipt counts {removed} chunks removed; the person had {naming}"
    listed = {doc for r in receipt["removed"] for doc in r["document_ids"]}
    assert set(person.documents) <= listed, f"the receipt leaves out {set(person.documents) - listed}"
    assert set(identifiers) <= set(receipt["identifiers"])

    def worker_answers() -> bool:
        try:
            hybrid("status", k=1)
            return True
        except OSError:
            return False

    # Killed again inside the purge window, before the force merge: the next worker finds the purge
    # pending (the receipt kept in streams-forget-progress), runs it and publishes the purged receipt.
    pending = wait_until(lambda: es.exists(index=worker.forget_progress_index, id=request_id), timeout=30)
    assert pending, "no pending purge was kept"
    pids = _worker_pids()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not set(_worker_pids()) & set(pids), timeout=30)
    # Still pending once no worker runs: the kill came before the purge (the window was long enough),
    # so the purged receipt below can only come from the next worker's resume.
    assert es.exists(index=worker.forget_progress_index, id=request_id), (
        f"the purge ran before the kill: purge_window_s={worker.purge_window_s} is too short for this test"
    )
    start_detached_worker(worker, "worker-restarted.log")

    assert wait_until(worker_answers, timeout=180), f"the restarted worker does not answer; see {log_path}"
    _assert_forgotten(es, person, vectors)
    purged = purged_receipt(worker, request_id, start, timeout=worker.purge_window_s + 300)
    assert purged["purged_at"] is not None and purged["removed"] == receipt["removed"]
