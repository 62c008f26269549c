"""`streams locate` on the real stack: a mention of a person planted in a dead letter (its raw bytes only,
no subjects) is found, with her contact record; locating changes nothing; `streams forget --report`
erases what the report listed, its receipt verifies, and locating again finds nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.observability.dead_letters import dead_letter_key
from streams.records import Origin
from streams.settings import Settings
from streams.sources import edits
from tests.integration.helpers import (
    es_client,
    found_documents,
    messages_after,
    produce,
    topic_end_offsets,
    unique,
    wait_until,
)
from tests.integration.test_migrate import cli

pytestmark = pytest.mark.integration


def _json(text: str) -> Any:
    return json.loads(text[text.index("{") :])


def test_locate_finds_a_dead_letter_mention_and_forget_report_erases_it(worker: Settings) -> None:
    es = es_client(worker)
    last = unique("lo").title()
    name, email = f"Lena {last}", f"lena.{last.lower()}@example.com"
    contact = edits.add_contact("Lena", last, email, ["sales"])  # the identity record: her name is a pattern
    contact_doc = f"crm/contact/{contact}"
    assert wait_until(lambda: contact_doc in found_documents(es, email), timeout=120), "her contact was never indexed"

    topic = "tickets.public.tickets"
    dead_start = topic_end_offsets(worker.dead_letter_topic)
    # Malformed JSON: dead-lettered at decode, before any mapping, so only its raw bytes name her.
    [origin] = produce(topic, [(b'{"id": 1}', f'{{"hello": "{name} asked for a call back"'.encode())], worker)
    key = dead_letter_key(Origin(topic, *origin))
    arrived = wait_until(
        lambda: key in {m.key() for m in messages_after(worker.dead_letter_topic, dead_start)}, timeout=120
    )
    assert arrived, "the planted event was not dead-lettered"

    report = _json(cli("locate", email, "--json").stdout)
    findings = {(f["place"], f["id"]): f for f in report["findings"]}
    letter = findings.get(("dead_letter", key.decode()))
    assert letter is not None, report["findings"]
    assert letter["action"] == "tombstone"
    assert {"why": "mention", "value": name, "detail": "name"} in letter["matches"]
    assert any(f["document_id"] == contact_doc and f["action"] == "delete" for f in report["findings"])
    assert contact_doc in found_documents(es, email), "locate changed the index"

    forgotten = cli("forget", "--report", report["report_id"], "--wait", "--json", "--timeout", "180")
    receipt = _json(forgotten.stdout)
    assert receipt["report_id"] == report["report_id"] and receipt["status"] == "unsearchable", receipt
    assert receipt["dead_letters_tombstoned"] >= 1, receipt
    assert "not accounted for" not in forgotten.stderr, forgotten.stderr

    verified = cli("receipt", "verify", receipt["request_id"])
    assert "OK: signature and chain" in verified.stdout, verified.stdout

    again = _json(cli("locate", email, "--json").stdout)
    assert again["findings"] == [], again["findings"]
