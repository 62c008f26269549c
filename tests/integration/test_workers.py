"""Several workers on the real stack: three worker processes share the consumer group while changes
stream into the three sources; one is killed with -9 and another joins mid-stream. In the end every
document of this test is exactly the source's state (`streams verify` finds nothing about them), and
its chunks in the index are exactly those its state record claims: no duplicate, no stale chunk.

The workers listen on their own ports (STREAMS_WORKER_WEB_PORT), so a worker the session started on
the default port may be a fourth member of the group: the assertions hold however many there are."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from streams.agents.worker_process import worker_answers
from streams.elastic.verify_index import CATEGORIES, SourceReport
from streams.pipeline.document_mapping import load_mappings
from streams.settings import PROJECT_ROOT, Settings
from streams.sources import edits
from streams.stack.runner import wait_ended
from streams.verify import verify_all
from tests.integration.helpers import es_client, state_record, unique, wait_until

pytestmark = pytest.mark.integration

PORTS = (16171, 16172, 16173, 16174)


class Workers:
    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, port: int) -> None:
        env = {**os.environ, "STREAMS_WORKER_WEB_PORT": str(port)}
        with open(self.log_dir / f"worker-{port}.log", "ab") as log:
            self.processes[port] = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "worker"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=PROJECT_ROOT,
            )

    def wait_ready(self, port: int) -> None:
        settings = self.settings.model_copy(update={"worker_web_port": port})

        def ready() -> bool:
            assert self.processes[port].poll() is None, f"worker on {port} exited; see {self.log_dir}"
            return worker_answers(settings)

        assert wait_until(ready, timeout=300, interval=1.0), f"worker on {port} did not answer"

    def kill(self, port: int) -> None:
        self.processes[port].send_signal(signal.SIGKILL)
        self.processes[port].wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            if process.poll() is None and not wait_ended(process.pid, 30):
                process.kill()


@pytest.fixture
def workers(local_stack: Settings) -> Iterator[Workers]:
    group = Workers(local_stack, local_stack.stack_home)
    try:
        yield group
    finally:
        group.stop_all()


def _exact_chunks(es: Elasticsearch, settings: Settings, document_id: str) -> str | None:
    """None when the document's chunks are exactly those its state record claims, else what differs."""
    state = state_record(es, document_id)
    if state is None:
        return "no state record"
    expected: dict[str, str] = {}
    for part_id, part in (state.get("parts") or {}).items():
        if part.get("deleted"):
            continue
        for number, text_hash in enumerate(part.get("chunk_hashes") or []):
            expected[f"{document_id}#{part_id}#{number}"] = text_hash
    es.indices.refresh(index=settings.index_alias)
    response = es.search(
        index=settings.index_alias,
        size=2000,
        source_includes=["text_hash"],
        query={"bool": {"filter": [{"term": {"kind": "chunk"}}, {"term": {"document_id": document_id}}]}},
    )
    found = {hit["_id"]: hit["_source"]["text_hash"] for hit in response["hits"]["hits"]}
    if len(response["hits"]["hits"]) != len(found):
        return "a chunk id twice"
    if found != expected:
        extra = sorted(set(found) - set(expected))
        missing = sorted(set(expected) - set(found))
        stale = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
        return f"extra {extra[:3]}, missing {missing[:3]}, stale {stale[:3]}"
    return None


def _issues(reports: list[SourceReport], documents: set[str]) -> dict[str, str]:
    return {
        issue.document_id: f"{category}: {issue.reason}"
        for report in reports
        for category in CATEGORIES
        for issue in report.issues[category]
        if issue.document_id in documents
    }


def test_three_workers_one_killed_one_added_end_consistent(workers: Workers) -> None:
    settings = workers.settings
    es = es_client(settings)
    for port in PORTS[:3]:
        workers.start(port)
    for port in PORTS[:3]:
        workers.wait_ready(port)

    marker = unique("workers")
    documents: set[str] = set()
    contact = edits.add_contact("Wren", marker.title(), f"{marker}@example.com", ["sales"])
    documents.add(f"crm/contact/{contact}")

    def stream_round(n: int) -> None:
        ticket = edits.add_ticket(
            f"Printer {marker} {n}", f"Jams on tray {n} ({marker}).", f"{marker}@example.com", ["support"]
        )
        first = edits.add_ticket_comment(ticket, "agent@example.com", f"Tried the driver for {marker} {n}.")
        second = edits.add_ticket_comment(ticket, "agent@example.com", f"Escalated {marker} {n}.")
        edits.edit_ticket(ticket, description=f"Jams on tray {n} after the firmware update ({marker}).")
        edits.edit_ticket_comment(first, f"Reinstalled the driver for {marker} {n}; no change.")
        if n % 2:
            edits.delete_ticket_comment(second)
        page = edits.new_wiki_page(
            f"Runbook {marker} {n}",
            f"== Steps ==\nRestart the {marker} service {n}.",
            ["engineering"],
            "writer@example.com",
        )
        edits.replace_wiki_text(
            page,
            f"== Steps ==\nDrain, then restart the {marker} service {n}.\n\n"
            f"== Checks ==\nLook at the {marker} dashboard.",
            "editor@example.com",
        )
        note = edits.add_note(contact, "rep@example.com", f"Call about {marker} renewal {n}.", title=f"Call {n}")
        edits.update_note(note, body=f"Call about {marker} renewal {n}: agreed on terms.")
        documents.update({f"tickets/ticket/{ticket}", f"wiki/page/{page}", f"crm/note/{note}"})
        if n == 4:
            gone = edits.add_note(contact, "rep@example.com", f"Temporary {marker} note.")
            edits.delete_note(gone)
            documents.add(f"crm/note/{gone}")

    for n in range(3):
        stream_round(n)
    workers.kill(PORTS[1])  # mid-stream, with changes in flight
    for n in range(3, 6):
        stream_round(n)
    workers.start(PORTS[3])
    for n in range(6, 9):
        stream_round(n)
    workers.wait_ready(PORTS[3])
    for n in range(9, 11):
        stream_round(n)

    mappings = load_mappings(PROJECT_ROOT / "connectors")
    last: dict[str, str] = {}

    def consistent() -> bool:
        nonlocal last
        last = _issues(verify_all(settings, es, mappings), documents)
        for document_id in sorted(documents):
            if document_id in last:
                continue
            root_deleted = (state_record(es, document_id) or {}).get("root", {}) or {}
            if root_deleted.get("deleted"):
                continue
            difference = _exact_chunks(es, settings, document_id)
            if difference:
                last[document_id] = f"chunks: {difference}"
        return not last

    # A killed worker's partitions move once the group notices (its session timeout): allow for it.
    assert wait_until(consistent, timeout=420, interval=5.0), f"not consistent: {dict(list(last.items())[:5])}"
    for port in (PORTS[0], PORTS[2], PORTS[3]):
        assert workers.processes[port].poll() is None, f"worker on {port} died"
