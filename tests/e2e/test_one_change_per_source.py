"""The whole loop, as a search service sees it: one insert, update and delete in each source database,
through Debezium, Kafka, the worker and Elasticsearch, asserted only through the /search API."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from streams.settings import Settings
from streams.sources import edits
from tests.integration.helpers import hybrid, unique, wait_until

pytestmark = pytest.mark.e2e

DEADLINE_S = 90


def _texts(document_id: str, word: str) -> str:
    """The text /search returns for `document_id` when asked for `word` (kNN always returns neighbours,
    so whether a document is listed says less than whether its returned text holds the word)."""
    hits = [hit for hit in hybrid(word, k=5)["hits"] if hit["document_id"] == document_id]
    return json.dumps(hits)


def _searchable(document_id: str, word: str) -> Callable[[], bool]:
    return lambda: word in _texts(document_id, word)


def _gone(document_id: str, word: str) -> Callable[[], bool]:
    return lambda: word not in _texts(document_id, word)


def _insert_update_delete(
    insert: Callable[[str], int], update: Callable[[int, str], None], delete: Callable[[int], None], kind: str
) -> None:
    first, second = unique(), unique()
    key = insert(first)
    document_id = f"{kind}/{key}"
    assert wait_until(_searchable(document_id, first), DEADLINE_S), f"{document_id} not searchable after insert"

    update(key, second)
    assert wait_until(_searchable(document_id, second), DEADLINE_S), f"{document_id}: the update never showed"
    assert wait_until(_gone(document_id, first), DEADLINE_S), f"{document_id}: the old text is still found"

    delete(key)
    assert wait_until(_gone(document_id, second), DEADLINE_S), f"{document_id} still searchable after delete"


def test_a_ticket(worker: Settings) -> None:
    _insert_update_delete(
        lambda w: edits.add_ticket("Printer jams", f"The {w} printer jams.", "e2e.t@example.com", ["support"]),
        lambda key, w: edits.edit_ticket(key, description=f"The {w} printer is fixed."),
        edits.delete_ticket,
        "tickets/ticket",
    )


def test_a_crm_note(worker: Settings) -> None:
    contact = edits.add_contact("Eve", unique("ev").title(), f"eve.{unique('e')}@example.com", ["sales"])
    _insert_update_delete(
        lambda w: edits.add_note(contact, "rep.e2e@example.com", f"Eve asked about the {w} plan."),
        lambda key, w: edits.update_note(key, body=f"Eve chose the {w} plan."),
        edits.delete_note,
        "crm/note",
    )


def test_a_wiki_page(worker: Settings) -> None:
    _insert_update_delete(
        lambda w: edits.new_wiki_page(
            f"E2E {unique('t')}", f"== Notes ==\n\nThe {w} cache.", ["engineering"], "e2e.w@example.com"
        ),
        lambda key, w: edits.replace_wiki_text(key, f"== Notes ==\n\nThe {w} cache, tuned.", "e2e.w@example.com"),
        edits.delete_wiki_page,
        "wiki/page",
    )
