"""/search as a search service calls it: metadata filters, pages and a total, GET and POST, JSON errors
that never echo a huge request, configured sources only, unknown parameters refused, and an OpenAPI
description that lists exactly the parameters the handler takes."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from streams.agents import web
from streams.agents.openapi import openapi_document
from streams.app import create_app
from streams.elastic.hybrid_index import (
    FILTER_FIELDS,
    MetadataFilter,
    SearchPage,
    chunk_filter,
    index_body,
    search_page,
)
from streams.pipeline.document_mapping import load_mappings
from streams.pipeline.update_document_state import DocumentState, RootState
from streams.resources import connectors_dir
from streams.settings import Settings
from tests.unit.test_search_auth import KEYS, SUPPORT_KEY, _authenticator

AUTH = f"Bearer {SUPPORT_KEY}"
SCHEMA = web.SearchSchema(("wiki", "tickets", "crm"), ("created_at", "priority", "product", "status"))


def _plan(**query: Any) -> web.SearchRequest | web.Rejection:
    return web.plan_search(_authenticator(), AUTH, {"q": "printer", **query}, SCHEMA)


def _refused(status: int, **query: Any) -> str:
    plan = _plan(**query)
    assert isinstance(plan, web.Rejection), plan
    assert plan.status == status, plan.body
    return plan.body["error"]


# -- the parameters ---------------------------------------------------------------------------------


def test_filters_become_exact_terms_and_a_created_at_range() -> None:
    plan = _plan(
        **{
            "filter.status": "open,pending",
            "filter.product": "printer",
            "from": "2024-05-01",
            "to": "2024-06-01T12:00:00Z",
        }
    )
    assert isinstance(plan, web.SearchRequest)
    assert plan.metadata == MetadataFilter(
        {"status": ["open", "pending"], "product": ["printer"]}, "2024-05-01", "2024-06-01T12:00:00+00:00"
    )
    clauses = chunk_filter(None, ["support"], plan.metadata)
    assert {"terms": {"attributes.status": ["open", "pending"]}} in clauses
    assert {"terms": {"attributes.product": ["printer"]}} in clauses
    assert {"range": {"created_at": {"gte": "2024-05-01", "lte": "2024-06-01T12:00:00+00:00"}}} in clauses
    assert chunk_filter(None, None) == [{"term": {"kind": "chunk"}}, {"term": {"visible": True}}]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"filter.colour": "red"}, 400, "unknown parameter(s) 'filter.colour'"),
        ({"offest": "10"}, 400, "unknown parameter(s) 'offest'"),
        ({"x" * 5000: "1"}, 400, "unknown parameter(s) 'xxxx"),
        ({"source": "nosuch"}, 400, "unknown source 'nosuch': the configured sources are wiki, tickets, crm"),
        ({"source": "wiki,nosuch"}, 400, "unknown source 'nosuch'"),
        ({"offset": "-1"}, 400, "offset must be between 0 and 990"),
        ({"offset": "995"}, 400, "offset + k at most 1000"),
        ({"offset": "ten"}, 400, "offset must be an integer"),
        ({"k": "0"}, 400, "k must be between 1 and 100"),
        ({"from": "yesterday"}, 400, "from must be an ISO 8601 date or time"),
        ({"from": "2024-06-02", "to": "2024-06-01"}, 400, "from must not be after to"),
        ({"filter.status": ","}, 400, "filter.status needs at least one value"),
        ({"q": "y" * 2001}, 414, "q is 2001 characters long; the limit is 2000 characters"),
    ],
)
def test_bad_parameters_are_named_and_never_echoed_whole(query: dict[str, str], status: int, message: str) -> None:
    error = _refused(status, **query)
    assert message in error
    assert len(error) < 400


def test_a_long_query_in_a_body_is_400_not_414() -> None:
    plan = web.plan_search(_authenticator(), AUTH, {"q": "y" * 2001}, SCHEMA, in_url=False)
    assert isinstance(plan, web.Rejection) and plan.status == 400


def test_a_body_takes_lists_and_numbers() -> None:
    body = {
        "q": "printer",
        "k": 5,
        "offset": 5,
        "source": ["tickets"],
        "filter.status": ["open"],
        "groups": ["support"],
    }
    plan = web.plan_search(_authenticator(), AUTH, body, SCHEMA, in_url=False)
    assert isinstance(plan, web.SearchRequest)
    assert (plan.k, plan.offset, plan.sources, plan.groups) == (5, 5, ["tickets"], ["support"])
    assert plan.metadata.values == {"status": ["open"]}
    for bad in ({"k": True}, {"k": [1]}, {"source": [1]}, {"q": ["a"]}):
        assert isinstance(
            web.plan_search(_authenticator(), AUTH, {"q": "p", **bad}, SCHEMA, in_url=False), web.Rejection
        )


def test_the_schema_lists_the_mapped_metadata_fields() -> None:
    schema = web.SearchSchema.of(load_mappings(connectors_dir(Settings())))
    assert {"status", "priority", "product", "created_at", "lifecycle_stage"} <= set(schema.filter_fields)
    assert schema.sources == ("crm", "tickets", "wiki")  # the mappings in connectors/, by name


# -- the OpenAPI description is the handler's -------------------------------------------------------


def test_the_openapi_description_lists_exactly_what_the_handler_accepts() -> None:
    document = openapi_document(SCHEMA)
    documented = {p["name"] for p in document["paths"]["/search"]["get"]["parameters"]}
    assert documented == set(document["components"]["schemas"]["SearchBody"]["properties"])
    # Every documented parameter is taken (none is refused as unknown)...
    for name in documented:
        value = {
            "k": "5",
            "offset": "0",
            "source": "wiki",
            "groups": "support",
            "from": "2024-01-01",
            "to": "2024-01-02",
        }.get(name, "x")
        plan = web.plan_search(_authenticator(), AUTH, {"q": "printer", name: value}, SCHEMA)
        assert isinstance(plan, web.SearchRequest), (name, plan)
    # ...and a parameter it does not document is refused: probe the names a caller might try.
    for name in ("size", "page", "cursor", "search_after", "filter.colour", "filters", "mode", "sort"):
        assert name not in documented
        assert "unknown parameter" in _refused(400, **{name: "1"})
    json.dumps(document)  # it is served as JSON


# -- the page: GET, POST, JSON errors ---------------------------------------------------------------


class _FakeWeb:
    def json(self, value: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Any:
        return SimpleNamespace(body=value, status=status, headers=headers or {})


class _Request:
    def __init__(self, method: str, query: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.method, self.query, self._body = method, query or {}, body
        self.headers = {"Authorization": AUTH}

    async def read(self) -> bytes:
        return self._body


async def _runtime() -> Any:
    async def encode(text: str) -> list[float]:
        return [0.0]

    return SimpleNamespace(
        search_target=lambda: ("streams-chunks-v1", SimpleNamespace(encode_query_async=encode)), es=None
    )


async def _answer(request: _Request, search: Any = None) -> Any:
    calls: list[dict[str, Any]] = []

    async def fake_search(
        es: Any, index: str, query: str, vector: Any, k: int, sources: Any, groups: Any, **options: Any
    ) -> SearchPage:
        calls.append({"k": k, "sources": sources, **options})
        return SearchPage([SimpleNamespace(to_json=lambda: {"document_id": "d"})] * k, options["offset"], 42)  # type: ignore[list-item]

    answer = await web.answer_search(_FakeWeb(), request, _authenticator(), _runtime, search or fake_search, SCHEMA)
    answer.calls = calls
    return answer


async def test_get_and_post_answer_the_same_page_with_a_total() -> None:
    got = await _answer(_Request("GET", {"q": "printer", "k": "3", "offset": "6", "filter.status": "open"}))
    posted = await _answer(
        _Request("POST", body=json.dumps({"q": "printer", "k": 3, "offset": 6, "filter.status": ["open"]}).encode())
    )
    for answer in (got, posted):
        assert answer.status == 200
        assert (answer.body["total"], answer.body["offset"], answer.body["next_offset"]) == (42, 6, 9)
        assert answer.body["filters"]["filter.status"] == ["open"]
        assert answer.calls[0]["metadata"].values == {"status": ["open"]} and answer.calls[0]["with_total"]
    assert got.body == posted.body


@pytest.mark.parametrize(
    ("request_", "status", "message"),
    [
        (_Request("POST", body=b"{not json"), 400, "the body must be a JSON object"),
        (_Request("POST", body=b"[1]"), 400, "the body must be a JSON object"),
        (_Request("POST", {"q": "x"}, body=b"{}"), 400, "not in the URL"),
        (_Request("GET", {"q": "x", "source": "nosuch"}), 400, "configured sources"),
    ],
)
async def test_every_refusal_is_a_json_error(request_: _Request, status: int, message: str) -> None:
    answer = await _answer(request_)
    assert answer.status == status and message in answer.body["error"]


async def test_a_failing_search_is_a_json_503_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(*args: Any, **kwargs: Any) -> SearchPage:
        raise ConnectionError("Elasticsearch is down")

    with caplog.at_level(logging.ERROR):
        answer = await _answer(_Request("GET", {"q": "printer"}), broken)
    assert answer.status == 503 and answer.body == {"error": "the search could not be served (ConnectionError)"}
    assert [r.exc_info for r in caplog.records if r.name == "streams.agents.web"] == [None]


# -- the real server: a long GET is JSON 414, a longer one no traceback -----------------------------


async def test_the_worker_answers_a_long_get_in_json_and_logs_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(Settings(search_api_keys=SecretStr(KEYS)))
    app.web.init_server()
    async with TestClient(TestServer(app.web.web_app)) as client:
        long = await client.get("/search", params={"q": "ü" * 2500}, headers={"Authorization": AUTH})
        assert long.status == 414 and long.content_type == "application/json"
        assert "the limit is 2000 characters" in (await long.json())["error"]
        put = await client.put("/search")
        assert put.status == 405 and put.headers["Allow"] == "GET, POST" and "error" in await put.json()
        huge = await client.post("/search", data=b"x" * (web.MAX_BODY + 1), headers={"Authorization": AUTH})
        assert huge.status == 413 and "limit of 1048576 bytes" in (await huge.json())["error"]
        served = await client.get("/openapi.json")
        assert (await served.json())["paths"]["/search"]["post"]
        with caplog.at_level(logging.INFO, logger="aiohttp.server"):
            too_long = await client.get("/search?q=" + "y" * (web.MAX_REQUEST_LINE + 10))
        assert too_long.status == 400  # aiohttp's own answer, before any page runs
    parse_errors = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert parse_errors and all(r.exc_info is None and r.levelno == logging.WARNING for r in parse_errors)
    assert all("yyyy" not in r.getMessage() for r in parse_errors)


def test_the_quiet_filter_can_fail() -> None:
    """Without the filter aiohttp's record carries the traceback the test above rules out."""
    from aiohttp.http_exceptions import LineTooLong

    record = logging.LogRecord("aiohttp.server", logging.ERROR, "", 0, "Error handling request", (), None)
    try:
        raise LineTooLong(b"yyyy", 8190)
    except LineTooLong:
        import sys

        record.exc_info = sys.exc_info()
    assert record.exc_info is not None
    web.QuietParseErrors().filter(record)
    assert record.exc_info is None and record.levelno == logging.WARNING and "yyyy" not in record.getMessage()


# -- the index: filter fields, pages, totals, metadata in hits ---------------------------------------


def test_the_mapping_and_every_chunk_carry_the_filter_fields() -> None:
    properties = index_body(384)["mappings"]["properties"]
    assert {name: properties[name] for name in FILTER_FIELDS} == FILTER_FIELDS
    root = RootState(
        1,
        metadata={
            "status": "open",
            "priority": 2,
            "urgent": True,
            "product": None,
            "created_at": "2024-05-01T10:00:00Z",
        },
    )
    fields = DocumentState("tickets/ticket/1", "tickets", root=root).doc_fields()
    assert fields["attributes"] == {
        "status": "open",
        "priority": "2",
        "urgent": "true",
        "product": None,
        "created_at": "2024-05-01T10:00:00Z",
    }
    assert fields["created_at"] == "2024-05-01T10:00:00Z"
    deleted = DocumentState(
        "tickets/ticket/1", "tickets", root=RootState(2, deleted=True, metadata={"status": "x"})
    ).doc_fields()
    assert deleted["attributes"] == {} and deleted["created_at"] is None


class _Ranked:
    """Twelve documents of one chunk each, ranked alike by both retrievers; the details request returns
    each asked chunk with its metadata. Records every request body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def search(self, index: str, **body: Any) -> dict[str, Any]:
        self.bodies.append(body)
        ids = body.get("query", {}).get("bool", {}).get("filter", [{}])[0].get("ids", {}).get("values")
        if ids is not None:
            hits = [
                {
                    "_id": i,
                    "_index": "v1",
                    "_source": {"document_id": i.split("#")[0], "source": "tickets", "metadata": {"status": "open"}},
                }
                for i in ids
            ]
            return {"hits": {"hits": hits}}
        hits = [{"_id": f"d{n}#root#0", "fields": {"document_id": [f"d{n}"]}} for n in range(12)]
        answer: dict[str, Any] = {"hits": {"hits": hits}}
        if "aggs" in body:
            answer["aggregations"] = {"documents": {"value": 12}}
        return answer


async def test_a_page_is_the_fused_ranking_from_the_offset_with_the_total_and_metadata() -> None:
    client = _Ranked()
    only_open = MetadataFilter({"status": ["open"]})
    page = await search_page(client, "a", "q", [0.1], 4, metadata=only_open, offset=8, with_total=True)  # type: ignore[arg-type]
    assert [h.document_id for h in page.hits] == ["d8", "d9", "d10", "d11"]
    assert (page.total, page.total_relation, page.offset) == (12, "eq", 8)
    assert page.hits[0].to_json()["metadata"] == {"status": "open"}
    # the filter narrows both retrievers and the details request
    assert len(client.bodies) == 3
    for body in client.bodies:
        clauses = body["knn"]["filter"] if "knn" in body else body["query"]["bool"]["filter"]
        assert {"terms": {"attributes.status": ["open"]}} in clauses
    with pytest.raises(ValueError, match="at most 1000"):
        await search_page(client, "a", "q", [0.1], 10, offset=995)  # type: ignore[arg-type]


def test_an_older_index_gets_the_filter_fields_its_chunks_now_carry() -> None:
    from unittest.mock import MagicMock

    from streams.elastic.hybrid_index import ensure_filter_fields

    client = MagicMock()
    ensure_filter_fields(client, "streams-chunks-v1")
    properties = client.indices.put_mapping.call_args.kwargs["properties"]
    assert client.indices.put_mapping.call_args.kwargs["index"] == "streams-chunks-v1"
    assert FILTER_FIELDS.items() <= properties.items()
    # every field doc_fields writes is mapped (the mapping is strict)
    fields = DocumentState("d", "tickets", root=RootState(1, metadata={"status": "open"})).doc_fields()
    assert set(fields) <= set(index_body(384)["mappings"]["properties"])
