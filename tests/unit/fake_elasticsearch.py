"""A tiny Elasticsearch over HTTP, in memory, for unit tests that drive the real client and its helpers.

It holds documents by (index, id) with sequence numbers, answers the calls the deletion lane makes
(refresh, search, msearch, bulk, get, mget, index, delete, get_alias, forcemerge, tasks) and evaluates the query
clauses the lane sends (bool, term, terms, ids, match, match_phrase, multi_match, wildcard, prefix) over the
stored sources. A kNN search finds nothing: the fake has no vectors to compare.

`refuse` lets a test answer chosen bulk items with a status (a 429, say) instead of applying them, so
the real `async_streaming_bulk` retry path runs; `after_bulk` lets it fail a bulk request after
applying it (a worker cut short after Elasticsearch did the work); `observe` sees each request come
in (the fake runs in the test's event loop, so it can look at the lane's state as it does).

A force merge started as a task (``wait_for_completion=false``) is reported running for
`merge_polls` polls of ``_tasks``, then completed with `merge_error` (None: a success);
`merges` counts the merges started.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote

from aiohttp import web
from elasticsearch import AsyncElasticsearch

HEADERS = {"X-Elastic-Product": "Elasticsearch"}
Refuse = Callable[[str, str, str], int | None]  # (action, index, id) -> a status to answer instead, or None


@dataclass
class Stored:
    source: dict[str, Any]
    seq_no: int
    primary_term: int = 1


@dataclass
class FakeElasticsearch:
    aliases: dict[str, list[str]] = field(default_factory=dict)  # alias -> concrete indices
    docs: dict[tuple[str, str], Stored] = field(default_factory=dict)
    refuse: Refuse = lambda action, index, doc_id: None
    after_bulk: int | None = None  # a status to answer a bulk request with once it is applied
    observe: Callable[[str], None] = lambda endpoint: None  # called with "_bulk", "_msearch", ... as each arrives
    bulk_items: list[tuple[str, str, int]] = field(default_factory=list)  # (action, id, status) answered
    bulk_refreshes: list[str | None] = field(default_factory=list)  # each bulk request's `refresh`, in order
    merge_polls: int = 0  # how many polls of a force merge task find it still running
    merge_error: dict[str, Any] | None = None  # what a completed force merge task reports as its error
    merges: int = 0
    _seq: int = 0

    # The store.

    def put(self, index: str, doc_id: str, source: dict[str, Any]) -> Stored:
        self._seq += 1
        stored = self.docs[(index, doc_id)] = Stored(source, self._seq)
        return stored

    def ids(self, index: str | None = None) -> set[str]:
        return {doc_id for (name, doc_id) in self.docs if index is None or name == index}

    def source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        stored = self.docs.get((index, doc_id))
        return stored.source if stored else None

    def resolve(self, expression: str) -> list[str]:
        names: list[str] = []
        for name in expression.split(","):
            for concrete in self.aliases.get(name, [name]):
                if concrete not in names:
                    names.append(concrete)
        return names

    # Searching.

    def search(self, expression: str, body: dict[str, Any], params: Any = None) -> dict[str, Any]:
        params = params or {}
        indices = self.resolve(expression)
        if "knn" in body:
            hits: list[tuple[str, str, Stored]] = []
        else:
            query = body.get("query") or {"match_all": {}}
            hits = [
                (index, doc_id, stored)
                for (index, doc_id), stored in sorted(self.docs.items())
                if index in indices and _matches(query, doc_id, stored.source)
            ]
        size = int(body.get("size", params.get("size", 10)))
        includes = params.get("_source_includes")
        excludes = params.get("_source_excludes") or ",".join((body.get("_source") or {}).get("excludes", []))
        with_seq = body.get("seq_no_primary_term") or params.get("seq_no_primary_term") == "true"
        shown = []
        for index, doc_id, stored in hits[:size]:
            hit: dict[str, Any] = {
                "_index": index,
                "_id": doc_id,
                "_source": _filtered(stored.source, includes, excludes),
            }
            if with_seq:
                hit.update(_seq_no=stored.seq_no, _primary_term=stored.primary_term)
            shown.append(hit)
        return {"hits": {"total": {"value": len(hits), "relation": "eq"}, "hits": shown}}

    # Bulk.

    def bulk(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        items = []
        position = 0
        while position < len(lines):
            ((action, meta),) = lines[position].items()
            position += 1
            body = None
            if action != "delete":
                body = lines[position]
                position += 1
            index, doc_id = meta["_index"], str(meta["_id"])
            status = self.refuse(action, index, doc_id) or self._apply(action, index, doc_id, meta, body)
            self.bulk_items.append((action, doc_id, status))
            result: dict[str, Any] = {"_index": index, "_id": doc_id, "status": status}
            if status >= 300:
                result["error"] = {"type": _ERROR_TYPES.get(status, "exception"), "reason": f"answered {status}"}
            items.append({action: result})
        return {"took": 1, "errors": any(next(iter(i.values()))["status"] >= 300 for i in items), "items": items}

    def _apply(self, action: str, index: str, doc_id: str, meta: dict[str, Any], body: Any) -> int:
        key = (index, doc_id)
        if action == "delete":
            return 200 if self.docs.pop(key, None) else 404
        if action == "update":
            if key not in self.docs:
                return 404
            self.put(index, doc_id, {**self.docs[key].source, **body["doc"]})
            return 200
        if action == "create" and key in self.docs:
            return 409
        if "if_seq_no" in meta and (key not in self.docs or self.docs[key].seq_no != int(meta["if_seq_no"])):
            return 409
        created = key not in self.docs
        self.put(index, doc_id, body)
        return 201 if created else 200

    # The HTTP side.

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._route)
        return app

    async def _route(self, request: web.Request) -> web.Response:
        # Split before decoding: a document id holds '/' (``state:tickets/ticket/4``, sent as %2F).
        parts = [unquote(part) for part in request.raw_path.split("?", 1)[0].split("/") if part]
        raw = await request.read()
        method = request.method
        self.observe(parts[-1] if parts else "")
        if parts[-1] == "_bulk":
            self.bulk_refreshes.append(request.query.get("refresh"))
            answer = self.bulk([json.loads(line) for line in raw.splitlines() if line.strip()])
            if self.after_bulk is not None:
                status, self.after_bulk = self.after_bulk, None
                return _json({"error": {"type": "unavailable", "reason": "cut short"}, "status": status}, status)
            return _json(answer)
        if parts[-1] == "_mget":
            return _json({"docs": [self.get(parts[0], str(i), request.query) for i in json.loads(raw)["ids"]]})
        if parts[-1] == "_msearch":
            lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
            pairs = zip(lines[::2], lines[1::2], strict=True)
            return _json({"responses": [self.search(header["index"], body) for header, body in pairs]})
        if parts[-1] == "_search":
            return _json(self.search(parts[0], json.loads(raw or b"{}"), request.query))
        if parts[-1] == "_forcemerge" and request.query.get("wait_for_completion") == "false":
            self.merges += 1
            return _json({"task": f"fake:{self.merges}"})
        if parts[-1] in {"_refresh", "_forcemerge"}:
            return _json({"_shards": {"total": 1, "successful": 1, "failed": 0}})
        if len(parts) == 2 and parts[0] == "_tasks":
            return self._task(parts[1])
        if parts[-1] == "_alias":
            return _json({index: {"aliases": {}} for index in self.resolve(parts[0])})
        if len(parts) == 3 and parts[1] == "_doc":
            return self._document(method, parts[0], parts[2], raw, request.query)
        return _json({"error": f"the fake does not answer {method} {request.path}"}, 400)

    def _task(self, task_id: str) -> web.Response:
        task = {"node": "fake", "id": int(task_id.split(":")[1]), "action": "indices:admin/forcemerge"}
        if self.merge_polls > 0:
            self.merge_polls -= 1
            return _json({"completed": False, "task": task})
        if self.merge_error is not None:
            return _json({"completed": True, "task": task, "error": self.merge_error})
        return _json(
            {"completed": True, "task": task, "response": {"_shards": {"total": 1, "successful": 1, "failed": 0}}}
        )

    def get(self, index: str, doc_id: str, query: Any = None) -> dict[str, Any]:
        """A GET's answer (and each of an mget's docs); ``_source=false`` leaves the source out."""
        stored = self.docs.get((index, doc_id))
        if stored is None:
            return {"_index": index, "_id": doc_id, "found": False}
        answer = {"_index": index, "_id": doc_id, "found": True, "_seq_no": stored.seq_no}
        answer["_primary_term"] = stored.primary_term
        if (query or {}).get("_source") != "false":
            answer["_source"] = stored.source
        return answer

    def _document(self, method: str, index: str, doc_id: str, raw: bytes, query: Any) -> web.Response:
        key = (index, doc_id)
        if method == "GET":
            answer = self.get(index, doc_id, query)
            return _json(answer, 200 if answer["found"] else 404)
        if method == "DELETE":
            found = self.docs.pop(key, None) is not None
            return _json(
                {"_index": index, "_id": doc_id, "result": "deleted" if found else "not_found"}, 200 if found else 404
            )
        meta = {name: query[name] for name in ("if_seq_no", "if_primary_term") if name in query}
        status = self._apply("index", index, doc_id, meta, json.loads(raw))
        if status == 409:
            return _json(
                {"error": {"type": "version_conflict_engine_exception", "reason": "conflict"}, "status": 409}, 409
            )
        return _json({"_index": index, "_id": doc_id, "result": "created" if status == 201 else "updated"}, status)


_ERROR_TYPES = {409: "version_conflict_engine_exception", 429: "es_rejected_execution_exception"}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, headers=HEADERS)


def _filtered(source: dict[str, Any], includes: str | None, excludes: str | None) -> dict[str, Any]:
    kept = {name: value for name, value in source.items() if not includes or name in includes.split(",")}
    return {name: value for name, value in kept.items() if not excludes or name not in excludes.split(",")}


def _values(source: dict[str, Any], name: str) -> list[Any]:
    value = source.get(name.split("^")[0])
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _texts(source: dict[str, Any], name: str) -> Iterable[str]:
    return (str(value).lower() for value in _values(source, name))


def _matches(query: dict[str, Any], doc_id: str, source: dict[str, Any]) -> bool:
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return True
    if kind == "bool":
        return _bool(spec, doc_id, source)
    if kind == "ids":
        return doc_id in spec["values"]
    ((name, value),) = spec.items() if kind != "multi_match" else [("", spec)]
    if kind == "term":
        wanted = value["value"] if isinstance(value, dict) else value
        return wanted in _values(source, name)
    if kind == "terms":
        return any(item in _values(source, name) for item in value)
    if kind == "match":  # a word as a whole word (no analysis beyond lower case)
        word = (value["query"] if isinstance(value, dict) else value).lower()
        return any(word in re.findall(r"\w+", text) for text in _texts(source, name))
    if kind == "match_phrase":
        phrase = (value["query"] if isinstance(value, dict) else value).lower()
        return any(phrase in text for text in _texts(source, name))
    if kind == "multi_match":
        phrase = value["query"].lower()
        return any(phrase in text for field_name in value["fields"] for text in _texts(source, field_name))
    if kind == "wildcard":
        return any(fnmatch.fnmatchcase(text, value["value"].lower()) for text in _texts(source, name))
    if kind == "prefix":
        return any(word.startswith(value["value"].lower()) for text in _texts(source, name) for word in text.split())
    raise ValueError(f"the fake does not evaluate {kind!r}")


def _clauses(spec: dict[str, Any], name: str) -> list[dict[str, Any]]:
    clauses = spec.get(name) or []
    return [clauses] if isinstance(clauses, dict) else list(clauses)


def _bool(spec: dict[str, Any], doc_id: str, source: dict[str, Any]) -> bool:
    required = _clauses(spec, "filter") + _clauses(spec, "must")
    if not all(_matches(clause, doc_id, source) for clause in required):
        return False
    if any(_matches(clause, doc_id, source) for clause in _clauses(spec, "must_not")):
        return False
    should = _clauses(spec, "should")
    wanted = int(spec.get("minimum_should_match", 0 if required else 1)) if should else 0
    return sum(_matches(clause, doc_id, source) for clause in should) >= wanted


@asynccontextmanager
async def serving(fake: FakeElasticsearch) -> AsyncIterator[AsyncElasticsearch]:
    """The fake on a free local port, and a real client for it (closed after)."""
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = AsyncElasticsearch(f"http://127.0.0.1:{port}", request_timeout=10)
    try:
        yield client
    finally:
        await client.close()
        await runner.cleanup()


T = TypeVar("T")


def run(fake: FakeElasticsearch, scenario: Callable[[AsyncElasticsearch], Awaitable[T]]) -> T:
    """Run `scenario` with a real client of the fake, served for its duration."""

    async def served() -> T:
        async with serving(fake) as es:
            return await scenario(es)

    return asyncio.run(served())
