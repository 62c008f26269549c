"""What the application tests share: the marks of a test that needs MediaWiki and RT, hybrid search
through /search, a document's indexed text, and a deletion request with its receipt."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from streams import avro
from streams.settings import Settings, get_settings
from tests.integration.helpers import (
    document_chunks,
    es_client,
    hybrid,
    messages_after,
    produce,
    topic_end_offsets,
    wait_until,
)

# The marks of a module whose tests need both MediaWiki and Request Tracker in the local stack.
NEEDS_WIKI_AND_RT = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not {"mediawiki", "request-tracker"} <= set(get_settings().stack_apps),
        reason="STREAMS_STACK_APPS does not name mediawiki and request-tracker",
    ),
]


def hybrid_found(word: str, groups: list[str] | None = None) -> set[str]:
    return {hit["document_id"] for hit in hybrid(word, groups, k=20)["hits"]}


def document_texts(document_id: str) -> str:
    return "\n".join(chunk["text"] for chunk in document_chunks(es_client(), document_id))


def forget_email(settings: Settings, email: str, kind: str = "email") -> dict[str, Any]:
    """Publish a deletion request for the subject (an e-mail address unless `kind` says otherwise) and
    wait for its receipt."""
    request_id = f"test-{uuid.uuid4()}"
    start = topic_end_offsets(settings.receipts_topic)
    request = {
        "request_id": request_id,
        "subject": email,
        "subject_kind": kind,
        "requested_by": "application-tests",
        "requested_at": datetime.now(UTC),
        "reason": "right to be forgotten (test)",
    }
    produce(settings.deletion_topic, [(request_id.encode(), avro.encode("deletion_request", request))])

    def receipt() -> dict[str, Any] | None:
        for message in messages_after(settings.receipts_topic, start):
            if message.key() == request_id.encode():
                return dict(avro.decode("deletion_receipt", message.value()))
        return None

    found = wait_until(receipt, timeout=120, interval=2.0)
    assert found, f"no receipt for {request_id}"
    return found
