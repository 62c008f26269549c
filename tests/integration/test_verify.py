"""`streams verify` against the real stack: a freshly indexed ticket is consistent; a document removed
from Elasticsearch behind the worker's back (index drift) is reported missing.

Other tests edit the same databases concurrently, so the assertions look at this test's own
documents, never at the whole report's verdict."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from streams.elastic.verify_index import CATEGORIES, SourceReport
from streams.pipeline.document_mapping import load_mappings
from streams.settings import PROJECT_ROOT, Settings
from streams.sources import edits
from streams.verify import verify, verify_all
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

        result = CliRunner().invoke(verify, ["--json"])
        assert result.exit_code == 1, result.output
        body = json.loads(result.output)
        tickets = next(s for s in body["sources"] if s["source"] == "tickets")
        assert document_id in {issue["document_id"] for issue in tickets["missing"]}
    finally:
        edits.delete_ticket(ticket_id)
