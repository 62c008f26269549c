"""streams.client: the body it posts is the API's (every name in /openapi.json), its results are typed,
and a refusal is a SearchError with the server's status and message."""

from __future__ import annotations

import json

import httpx
import pytest

from streams.agents import web
from streams.agents.openapi import openapi_document
from streams.client import SearchClient, SearchError, search_body
from tests.unit.test_search_auth import _authenticator

SCHEMA = web.SearchSchema(("wiki", "tickets", "crm"), ("status",))

ANSWER = {
    "query": "printer",
    "caller": "helpdesk",
    "groups": ["support"],
    "k": 1,
    "offset": 0,
    "next_offset": 1,
    "total": 7,
    "total_relation": "eq",
    "filters": {"filter.status": ["open"]},
    "a_field_from_a_newer_server": True,
    "hits": [
        {
            "document_id": "tickets/ticket/1",
            "source": "tickets",
            "title": "Printer jams",
            "link": "https://tickets.example.com/agent/tickets/1",
            "score": 0.03,
            "metadata": {"status": "open"},
            "chunks": [{"chunk_id": "c", "highlights": ["<em>printer</em>"], "bm25_rank": 1, "knn_rank": None}],
        }
    ],
}


def test_the_body_uses_only_documented_parameters() -> None:
    body = search_body(
        "printer",
        k=5,
        offset=5,
        source=["tickets"],
        groups=["support"],
        filters={"status": ["open"]},
        created_from="2024-05-01",
        created_to="2024-06-01",
    )
    documented = set(openapi_document(SCHEMA)["components"]["schemas"]["SearchBody"]["properties"])
    assert set(body) <= documented
    plan = web.plan_search(
        _authenticator(),
        "Bearer support-key-0123456789abcdef",
        body,
        SCHEMA,
        in_url=False,
    )
    assert isinstance(plan, web.SearchRequest) and plan.metadata.values == {"status": ["open"]}


def test_results_are_typed_and_errors_raise() -> None:
    posted: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer key"
        body = json.loads(request.content)
        posted.append(body)
        if body["q"] == "bad":
            return httpx.Response(400, json={"error": "unknown source 'nosuch': the configured sources are wiki"})
        return httpx.Response(200, json=ANSWER)

    with SearchClient("http://worker", "key", transport=httpx.MockTransport(handler)) as client:
        page = client.search("printer", k=1, filters={"status": ["open"]})
        assert page.total == 7 and page.next_offset == 1
        [hit] = page.hits
        assert hit.metadata == {"status": "open"} and hit.chunks[0].highlights == ["<em>printer</em>"]
        with pytest.raises(SearchError, match="configured sources") as caught:
            client.search("bad")
        assert caught.value.status == 400
    assert posted[0]["filter.status"] == ["open"]
