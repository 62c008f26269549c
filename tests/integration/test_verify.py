"""`streams verify` against the real stack: a freshly indexed ticket is consistent; a document removed
from Elasticsearch behind the worker's back (index drift) is reported missing; a lost update (the
state record says an older content was applied) is reported stale, and `--repair` brings the
document back through Debezium and the worker.

Other tests edit the same databases concurrently, so the assertions look at this test's own
documents, never at the whole report's verdict."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from streams.elastic.verify_index import CATEGORIES, Issue, SourceReport
from streams.pipeline.document_mapping import load_mappings
from streams.settings import PROJECT_ROOT, Settings
from streams.sources import edits
from streams.sources.connect import connect_postgres
from streams.verify import repair, verify, verify_all, verify_source
from tests.integration.helpers import es_client, state_record, unique, visible_chunks, wait_until

pytestmark = pytest.mark.integration


def _issues_of(reports: list[SourceReport], document_id: str) -> dict[str, str]:
    return {
        category: issue.reason
        for report in reports
        for category in CATEGORIES
        for issue in report.issues[category]
        if issue.document_id == document_id
    }


def test_fresh_ticket_is_consistent_and_dropped_document_is_missing(worker: Settings) -> None:
    es = es_client(worker)
    marker = unique()
    ticket_id = edits.add_ticket(
        f"Verify check {marker}",
        f"The dashboard shows {marker} after the upgrade.",
        f"{marker}@example.com",
        ["support"],
    )
    comment_id = edits.add_ticket_comment(ticket_id, "agent@example.com", f"Looking into {marker} now.")
    document_id = f"tickets/ticket/{ticket_id}"
    try:

        def indexed() -> bool:
            state = state_record(es, document_id)
            parts = (state or {}).get("parts") or {}
            return bool(visible_chunks(es, document_id)) and f"ticket_comments/{comment_id}" in parts

        assert wait_until(indexed, timeout=300), f"{document_id} was not indexed"
        mappings = load_mappings(PROJECT_ROOT / "connectors")

        reports = verify_all(worker, es, mappings)
        assert _issues_of(reports, document_id) == {}

        # Index drift: the document's chunks and state vanish from Elasticsearch, not from the source.
        for chunk in visible_chunks(es, document_id):
            es.delete(index=worker.index_alias, id=chunk["_id"], refresh=True)
        es.delete(index=worker.index_alias, id=f"state:{document_id}", refresh=True)

        reports = verify_all(worker, es, mappings)
        assert "missing" in _issues_of(reports, document_id)

        result = CliRunner().invoke(verify, ["--json", "--limit", "1000000"])
        assert result.exit_code == 1, result.output
        body = json.loads(result.output)
        tickets = next(s for s in body["sources"] if s["source"] == "tickets")
        assert document_id in {issue["document_id"] for issue in tickets["missing"]}
    finally:
        edits.delete_ticket(ticket_id)


def test_a_lost_update_is_stale_and_repair_brings_it_back(worker: Settings) -> None:
    es = es_client(worker)
    old, new = unique(), unique()
    ticket_id = edits.add_ticket(f"Lost update {old}", f"The VPN drops {old}.", f"{old}@example.com", ["support"])
    document_id = f"tickets/ticket/{ticket_id}"
    mappings = load_mappings(PROJECT_ROOT / "connectors")

    def root_hash() -> str:
        parts = (state_record(es, document_id) or {}).get("parts") or {}
        return str((parts.get("root") or {}).get("content_hash", ""))

    try:
        assert wait_until(root_hash, timeout=300), f"{document_id} was not indexed with a content hash"
        old_hash = root_hash()
        with connect_postgres(worker.tickets_dsn, name="tickets") as conn:
            conn.execute("UPDATE tickets SET description = %s WHERE id = %s", (f"The VPN drops {new}.", ticket_id))
        assert wait_until(lambda: root_hash() not in ("", old_hash), timeout=300), "the edit was not indexed"
        new_hash = root_hash()
        assert _issues_of([verify_source(worker, es, mappings, "tickets")], document_id) == {}

        # Plant the lost update: the state record claims the older row content was the last applied.
        response = es.get(index=worker.index_alias, id=f"state:{document_id}")
        planted = response["_source"]
        planted["parts"]["root"]["content_hash"] = old_hash
        es.index(index=response["_index"], id=f"state:{document_id}", document=planted, refresh=True)

        issues = _issues_of([verify_source(worker, es, mappings, "tickets")], document_id)
        assert "stale" in issues and "content differs from the source" in issues["stale"], issues

        # Repair through the pipeline: an incremental snapshot of this ticket's rows, read by the worker.
        drifted = SourceReport("tickets")
        drifted.issues["stale"].append(Issue(document_id, issues["stale"]))
        assert repair(worker, mappings, [drifted], say=print) == {"tickets": 1}
        assert wait_until(lambda: root_hash() == new_hash, timeout=300), "the repair snapshot was not applied"
        assert _issues_of([verify_source(worker, es, mappings, "tickets")], document_id) == {}
    finally:
        edits.delete_ticket(ticket_id)


def test_verify_repair_is_documented() -> None:
    result = CliRunner().invoke(verify, ["--help"])
    assert result.exit_code == 0 and "--repair" in result.output and "incremental snapshot" in result.output
