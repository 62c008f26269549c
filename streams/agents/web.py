"""The worker's HTTP endpoints: /metrics (Prometheus), /freshness (JSON), /search (hybrid search).

/metrics and /freshness are open (the server listens on loopback unless STREAMS_WORKER_WEB_BIND says
otherwise); /search needs a bearer credential and searches only the groups it grants (streams/auth.py).
`register` adds them to the worker's App; the runtime and the authenticator are the worker service's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.agents.runtime import Runtime
from streams.auth import Authenticator, Caller, Unauthorized
from streams.elastic import hybrid_index

if TYPE_CHECKING:
    from streams.agents.service import WorkerService

log = logging.getLogger(__name__)


def register(app: faust.App, service: WorkerService) -> None:
    settings = service.settings

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/freshness")
    async def freshness_page(web: Any, request: Any) -> Any:
        """Answers only once the runtime is built: `worker_answers` (worker_process.py) reads that as ready."""
        runtime = await service.runtime()
        figures = runtime.freshness.recent()
        return web.json({"worker_id": settings.worker_id, "sources": [f.to_json() for f in figures]})

    @app.page("/search")
    async def search_page(web: Any, request: Any) -> Any:
        return await answer_search(web, request, service.search_authenticator(), service.runtime)


@dataclass(frozen=True)
class SearchRequest:
    caller: Caller
    query: str
    k: int
    sources: list[str] | None
    groups: list[str] | None  # the filter: None is the operator's unrestricted view


@dataclass(frozen=True)
class Rejection:
    status: int
    body: dict[str, str]
    headers: dict[str, str]


def plan_search(
    authenticator: Authenticator, authorization: str | None, query: Mapping[str, str]
) -> SearchRequest | Rejection:
    """Authenticate first (nothing about the index is revealed to a caller without a credential),
    then read the parameters. The groups come from the credential; `groups=` only narrows them."""
    try:
        caller = authenticator.authenticate(authorization)
    except Unauthorized as exc:
        return Rejection(401, exc.to_json(), {"WWW-Authenticate": exc.challenge()})
    text = query.get("q", "").strip()
    if not text:
        return Rejection(400, {"error": "missing query parameter q"}, {})
    try:
        k = int(query.get("k", "10"))
    except ValueError:
        return Rejection(400, {"error": "k must be an integer"}, {})
    if not 1 <= k <= 100:
        return Rejection(400, {"error": "k must be between 1 and 100"}, {})
    sources = [s for s in query.get("source", "").split(",") if s] or None
    groups_param = query.get("groups")
    requested = None if groups_param is None else [g for g in groups_param.split(",") if g]
    return SearchRequest(caller, text, k, sources, caller.search_groups(requested))


Search = Callable[..., Awaitable[list[Any]]]


async def answer_search(
    web: Any,
    request: Any,
    authenticator: Authenticator,
    runtime_ready: Callable[[], Awaitable[Runtime]],
    search: Search = hybrid_index.search,
) -> Any:
    plan = plan_search(authenticator, request.headers.get("Authorization"), request.query)
    if isinstance(plan, Rejection):
        if plan.status == 401:
            log.info("/search refused: %s", plan.body["error_description"])
        return web.json(plan.body, status=plan.status, headers=plan.headers)
    runtime = await runtime_ready()
    index, embedder = runtime.search_target()  # the index the alias serves, and its model
    vector = await embedder.encode_query_async(plan.query)
    hits = await search(runtime.es, index, plan.query, vector, plan.k, plan.sources, plan.groups)
    return web.json(
        {"query": plan.query, "caller": plan.caller.name, "groups": plan.groups, "hits": [h.to_json() for h in hits]}
    )
