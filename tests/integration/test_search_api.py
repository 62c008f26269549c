"""/search as a search service calls it, through the real stack: two planted tickets told apart by their
status and creation time, pages and a total, POST through streams.client, JSON errors, /openapi.json."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.client import SearchClient, SearchError
from streams.settings import Settings
from streams.sources import edits
from tests.integration.helpers import hybrid, search_api, search_key, unique, wait_until

pytestmark = pytest.mark.integration


def _ids(body: dict[str, Any]) -> list[str]:
    return [hit["document_id"] for hit in body["hits"]]


def test_filters_pages_post_and_errors(worker: Settings) -> None:
    word = unique()
    open_id = edits.add_ticket(
        f"Scanner {word}",
        f"The scanner shows {word}.",
        f"{unique('a')}@example.com",
        ["support"],
        status="open",
        product="scanner",
    )
    solved_id = edits.add_ticket(
        f"Scanner {word} again",
        f"Again {word}.",
        f"{unique('b')}@example.com",
        ["support"],
        status="solved",
        product="scanner",
    )
    opened, solved = f"tickets/ticket/{open_id}", f"tickets/ticket/{solved_id}"
    operator = f"Bearer {search_key()}"
    try:
        assert wait_until(lambda: {opened, solved} <= set(_ids(hybrid(word, k=10))), timeout=300)

        status, _, body = search_api({"q": word, "filter.status": "open", "k": "10"}, operator)
        assert status == 200 and opened in _ids(body) and solved not in _ids(body), body
        hit = next(h for h in body["hits"] if h["document_id"] == opened)
        assert hit["metadata"]["status"] == "open" and hit["metadata"]["product"] == "scanner"
        assert body["total"] >= 1

        # created_at is indexed as a date: a range that holds today finds the ticket, one from tomorrow does not
        yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
        status, _, body = search_api({"q": word, "source": "tickets", "from": yesterday, "k": "10"}, operator)
        assert status == 200 and {opened, solved} <= set(_ids(body)), body
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
        status, _, body = search_api({"q": word, "source": "tickets", "from": tomorrow}, operator)
        assert status == 200 and not {opened, solved} & set(_ids(body))

        status, _, first = search_api({"q": word, "source": "tickets", "k": "1"}, operator)
        assert status == 200 and first["next_offset"] == 1 and first["total"] >= 2
        status, _, second = search_api({"q": word, "source": "tickets", "k": "1", "offset": "1"}, operator)
        assert status == 200 and _ids(first) != _ids(second)

        with SearchClient(worker.worker_url(), search_key()) as client:
            page = client.search(word, k=10, filters={"status": ["solved"]}, source=["tickets"])
            assert [h.document_id for h in page.hits if h.document_id in (opened, solved)] == [solved]
            with pytest.raises(SearchError) as refused:
                client.search(word, source=["nosuch"])
            assert refused.value.status == 400 and "configured sources" in refused.value.message

        status, _, body = search_api({"q": "x" * 5000}, operator)
        assert status == 414 and "the limit is 2000" in body["error"]
        status, _, body = search_api({"q": word, "colour": "red"}, operator)
        assert status == 400 and "unknown parameter" in body["error"]
        with urllib.request.urlopen(f"{worker.worker_url()}/openapi.json", timeout=30) as response:
            assert response.status == 200 and b'"/search"' in response.read()
    finally:
        edits.delete_ticket(open_id)
        edits.delete_ticket(solved_id)
