"""The worker's HTTP endpoints: /metrics (Prometheus), /freshness (JSON), /search (hybrid search),
/openapi.json (the description of /search and /locate) and /locate (the subject access report, operators only).

/metrics, /freshness and /openapi.json are open (the server listens on loopback unless
STREAMS_WORKER_WEB_BIND says otherwise); /search needs a bearer credential and searches only the groups
it grants (streams/auth.py). `register` adds them to the worker's App; the runtime and the
authenticator are the worker service's.

/search answers GET (parameters in the query string) and POST (the same names in a JSON object), and
every answer it gives, errors included, is JSON. An unknown parameter is refused (400, naming it): a
misspelt filter that was ignored would return unfiltered hits that look filtered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import faust
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_exceptions import HTTPRequestEntityTooLarge
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.agents.runtime import Runtime
from streams.auth import Authenticator, Caller, Unauthorized
from streams.elastic import hybrid_index
from streams.elastic.hybrid_index import MAX_WINDOW, MetadataFilter, SearchPage
from streams.errors import InvalidRequest
from streams.forget.request import validate_deletion_request
from streams.pipeline.document_mapping import Mappings

if TYPE_CHECKING:
    from streams.agents.service import WorkerService

log = logging.getLogger(__name__)

# The longest query /search takes, in characters. Percent-encoded, the longest such query (four UTF-8
# bytes a character, three URL bytes a byte) still fits in MAX_REQUEST_LINE, so that a GET over the limit
# reaches this code and gets a JSON 414 rather than aiohttp's plain-text answer.
MAX_QUERY_CHARS = 2000
MAX_REQUEST_LINE = 64 * 1024  # aiohttp's own default is 8,190 bytes
MAX_BODY = 1024 * 1024  # a POST body (aiohttp's default, named so that the error can say it)
MAX_K = 100
FILTER_PREFIX = "filter."

# Every parameter /search takes, beside one `filter.<field>` per mapped metadata field (SearchSchema).
# openapi.py describes each; a unit test holds the handler and the description to the same list.
PARAMETERS: dict[str, str] = {
    "q": "The query: words for BM25, meaning for kNN (required, at most 2000 characters).",
    "k": f"Documents to return (1 to {MAX_K}, default 10).",
    "offset": f"Skip this many documents of the ranking (default 0; offset + k at most {MAX_WINDOW}).",
    "source": "Only these sources (comma-separated in a query string, a list in a JSON body).",
    "groups": (
        "Narrow the credential's access groups to these (comma-separated or a list); a group the"
        " credential does not hold is a 400."
    ),
    "from": "Only documents created at or after this ISO 8601 date or time (their `created_at`).",
    "to": "Only documents created at or before this ISO 8601 date or time (a date includes its whole day).",
}


@dataclass(frozen=True)
class SearchSchema:
    """What this worker's /search can be asked for: its configured sources and the metadata fields of
    its mappings (connectors/*.mapping.yaml, `metadata:`)."""

    sources: tuple[str, ...]
    filter_fields: tuple[str, ...] = ()

    @classmethod
    def of(cls, mappings: Mappings) -> SearchSchema:
        fields = {name for source in mappings.sources for document in source.documents for name in document.metadata}
        return cls(mappings.names, tuple(sorted(fields)))

    def parameters(self) -> list[str]:
        return [*PARAMETERS, *(FILTER_PREFIX + name for name in self.filter_fields)]


@dataclass(frozen=True)
class SearchRequest:
    caller: Caller
    query: str
    k: int
    sources: list[str] | None
    groups: list[str] | None  # the filter: None is the operator's unrestricted view
    offset: int = 0
    metadata: MetadataFilter = field(default_factory=MetadataFilter)


@dataclass(frozen=True)
class Rejection:
    status: int
    body: dict[str, str]
    headers: dict[str, str]


def _error(status: int, message: str) -> Rejection:
    return Rejection(status, {"error": message}, {})


def _short(value: object, limit: int = 40) -> str:
    """A value quoted in an error, cut short: an error never echoes a huge request back."""
    text = str(value)
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _values(name: str, raw: Any) -> list[str] | Rejection:
    """A list parameter: comma-separated in a query string, a string or a list of strings in a body."""
    if isinstance(raw, str):
        items = raw.split(",")
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        items = [part for item in raw for part in item.split(",")]
    else:
        return _error(400, f"{name} must be a string or a list of strings")
    return [item.strip() for item in items if item.strip()]


def _integer(name: str, raw: Any, default: int) -> int | Rejection:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return _error(400, f"{name} must be an integer")
    try:
        return int(raw)
    except ValueError:
        return _error(400, f"{name} must be an integer")


def _instant(name: str, raw: Any) -> str | Rejection | None:
    """An ISO 8601 date (kept as a date: Elasticsearch's range then covers the whole day at `to`) or time."""
    if raw is None:
        return None
    if isinstance(raw, str):
        text = raw.strip()
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text).isoformat()
        except ValueError:
            pass
    return _error(400, f"{name} must be an ISO 8601 date or time, such as 2024-05-01 or 2024-05-01T12:00:00Z")


def plan_search(
    authenticator: Authenticator,
    authorization: str | None,
    query: Mapping[str, Any],
    schema: SearchSchema,
    *,
    in_url: bool = True,
) -> SearchRequest | Rejection:
    """Authenticate first (nothing about the index is revealed to a caller without a credential),
    then read the parameters (`in_url`: from a query string, else from a JSON body). The groups come
    from the credential; `groups=` only narrows them."""
    try:
        caller = authenticator.authenticate(authorization)
    except Unauthorized as exc:
        return Rejection(401, exc.to_json(), {"WWW-Authenticate": exc.challenge()})
    known = set(schema.parameters())
    if unknown := sorted(name for name in query if name not in known):
        listed = ", ".join(_short(name) for name in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        return _error(400, f"unknown parameter(s) {listed}: /search takes {', '.join(schema.parameters())}")
    text = query.get("q")
    if not isinstance(text, str | None):
        return _error(400, "q must be a string")
    text = (text or "").strip()
    if not text:
        return _error(400, "missing query parameter q")
    if len(text) > MAX_QUERY_CHARS:
        return _error(
            414 if in_url else 400, f"q is {len(text)} characters long; the limit is {MAX_QUERY_CHARS} characters"
        )
    k = _integer("k", query.get("k"), 10)
    if isinstance(k, Rejection):
        return k
    if not 1 <= k <= MAX_K:
        return _error(400, f"k must be between 1 and {MAX_K}")
    offset = _integer("offset", query.get("offset"), 0)
    if isinstance(offset, Rejection):
        return offset
    if not 0 <= offset <= MAX_WINDOW - k:
        return _error(400, f"offset must be between 0 and {MAX_WINDOW - k} (offset + k at most {MAX_WINDOW})")
    sources = _values("source", query.get("source", ""))
    if isinstance(sources, Rejection):
        return sources
    if unknown_sources := [s for s in sources if s not in schema.sources]:
        return _error(
            400,
            f"unknown source {', '.join(_short(s) for s in unknown_sources[:5])}: "
            f"the configured sources are {', '.join(schema.sources)}",
        )
    requested = None
    if "groups" in query:
        groups = _values("groups", query["groups"])
        if isinstance(groups, Rejection):
            return groups
        # A group the credential does not hold is refused, not silently dropped: an empty answer would
        # look like "nothing matches". The refusal is the same whether the group exists or not, so
        # it tells nothing about other callers' groups. An operator may pick any group's view.
        if not caller.operator and (unheld := [g for g in groups if g not in caller.groups]):
            held = ", ".join(sorted(caller.groups)) or "none"
            return _error(
                400,
                f"unknown group {', '.join(_short(g) for g in unheld[:5])}: this credential holds {held}",
            )
        requested = groups
    values: dict[str, list[str]] = {}
    for name in schema.filter_fields:
        if (raw := query.get(FILTER_PREFIX + name)) is None:
            continue
        wanted = _values(FILTER_PREFIX + name, raw)
        if isinstance(wanted, Rejection):
            return wanted
        if not wanted:
            return _error(400, f"{FILTER_PREFIX}{name} needs at least one value")
        values[name] = wanted
    created_from, created_to = _instant("from", query.get("from")), _instant("to", query.get("to"))
    for bound in (created_from, created_to):
        if isinstance(bound, Rejection):
            return bound
    assert not isinstance(created_from, Rejection) and not isinstance(created_to, Rejection)
    if created_from and created_to and _moment(created_from) > _moment(created_to):
        return _error(400, "from must not be after to")
    return SearchRequest(
        caller,
        text,
        k,
        sources or None,
        caller.search_groups(requested),
        offset,
        MetadataFilter(values, created_from, created_to),
    )


def _moment(instant: str) -> datetime:
    """A bound as a time to compare (a date as its midnight; without an offset, UTC as Elasticsearch reads it)."""
    moment = datetime.fromisoformat(instant)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


SearchPageFn = Callable[..., Awaitable[SearchPage]]


def query_parameters(query: Any) -> dict[str, str]:
    """A query string's parameters; a repeated one (`source=a&source=b`) reads as a comma-separated list."""
    getall = getattr(query, "getall", None)
    if getall is None:
        return dict(query)
    return {name: ",".join(getall(name)) for name in dict.fromkeys(query.keys())}


async def request_parameters(request: Any) -> dict[str, Any] | Rejection:
    """The parameters of a GET (its query string) or of a POST (its JSON object)."""
    if request.method != "POST":
        return query_parameters(request.query)
    try:
        raw = await request.read()
    except HTTPRequestEntityTooLarge:
        return _error(413, f"the body is over the limit of {MAX_BODY} bytes")
    try:
        body = json.loads(raw or b"null")
    except (UnicodeDecodeError, ValueError):
        return _error(400, "the body must be a JSON object")
    if not isinstance(body, dict):
        return _error(400, "the body must be a JSON object")
    if query := query_parameters(request.query):
        return _error(400, f"a POST takes its parameters in the body, not in the URL ({', '.join(map(_short, query))})")
    return body


async def answer_search(
    web: Any,
    request: Any,
    authenticator: Authenticator,
    runtime_ready: Callable[[], Awaitable[Runtime]],
    search: SearchPageFn,
    schema: SearchSchema,
) -> Any:
    parameters = await request_parameters(request)
    if isinstance(parameters, Rejection):
        return web.json(parameters.body, status=parameters.status)
    plan = plan_search(
        authenticator, request.headers.get("Authorization"), parameters, schema, in_url=request.method != "POST"
    )
    if isinstance(plan, Rejection):
        if plan.status == 401:
            log.info("/search refused: %s", plan.body["error_description"])
        return web.json(plan.body, status=plan.status, headers=plan.headers)
    try:
        runtime = await runtime_ready()
        index, embedder = runtime.search_target()  # the index the alias serves, and its model
        vector = await embedder.encode_query_async(plan.query)
        page = await search(
            runtime.es,
            index,
            plan.query,
            vector,
            plan.k,
            plan.sources,
            plan.groups,
            metadata=plan.metadata,
            offset=plan.offset,
            with_total=True,
        )
    except Exception as exc:  # the caller gets JSON; the log one line (the request was well formed)
        log.error("/search failed: %s: %s", type(exc).__name__, exc)
        return web.json({"error": f"the search could not be served ({type(exc).__name__})"}, status=503)
    more = len(page.hits) == plan.k and plan.offset + 2 * plan.k <= MAX_WINDOW
    return web.json(
        {
            "query": plan.query,
            "caller": plan.caller.name,
            "groups": plan.groups,
            "k": plan.k,
            "offset": plan.offset,
            "next_offset": plan.offset + plan.k if more else None,
            "total": page.total,
            "total_relation": page.total_relation,
            "filters": {
                **{FILTER_PREFIX + name: values for name, values in plan.metadata.values.items()},
                **{"from": plan.metadata.created_from, "to": plan.metadata.created_to},
            },
            "hits": [h.to_json() for h in page.hits],
        }
    )


LocateFn = Callable[[str, str, str], Awaitable[dict[str, Any]]]  # (subject, kind, requested by) -> the report's JSON


async def answer_locate(web: Any, request: Any, authenticator: Authenticator, locate: LocateFn) -> Any:
    """/locate?subject=...&kind=email: the subject access report (forget/locate.py), for an operator
    credential only: it lists what is held about a person across every access group. A search key,
    whatever its groups, is refused (403), as is a JWT (never an operator credential)."""
    try:
        caller = authenticator.authenticate(request.headers.get("Authorization"))
    except Unauthorized as exc:
        return web.json(exc.to_json(), status=401, headers={"WWW-Authenticate": exc.challenge()})
    if not caller.operator:
        log.info("/locate refused to %s: not an operator credential", caller.name)
        return web.json({"error": "/locate takes an operator credential"}, status=403)
    parameters = query_parameters(request.query)
    if unknown := sorted(name for name in parameters if name not in ("subject", "kind")):
        return _error_json(
            web, 400, f"unknown parameter(s) {', '.join(map(_short, unknown))}: /locate takes subject, kind"
        )
    subject, kind = (parameters.get("subject") or "").strip(), parameters.get("kind") or "email"
    try:
        validate_deletion_request({"request_id": "locate", "subject": subject, "subject_kind": kind})
    except InvalidRequest as exc:
        return _error_json(web, 400, str(exc))
    try:
        report = await locate(subject, kind, caller.name)
    except Exception as exc:  # the caller gets JSON; the log one line (the request was well formed)
        log.error("/locate failed: %s: %s", type(exc).__name__, exc)
        return web.json({"error": f"the report could not be made ({type(exc).__name__})"}, status=503)
    return web.json(report)


def _error_json(web: Any, status: int, message: str) -> Any:
    rejection = _error(status, message)
    return web.json(rejection.body, status=rejection.status)


class QuietParseErrors(logging.Filter):
    """aiohttp answers a request it cannot parse (a request line over MAX_REQUEST_LINE, say) before
    any page runs, and logs it at ERROR with a traceback that quotes the line. One warning line that
    names the problem, and not the request, is enough: the caller is at fault, not the worker."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BadHttpMessage):
            record.msg, record.args = (
                "refused a request aiohttp could not parse: %s (status %d)",
                (
                    type(exc).__name__,
                    exc.code,
                ),
            )
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_parse_errors() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, QuietParseErrors) for f in logger.filters):
        logger.addFilter(QuietParseErrors())


def register(app: faust.App, service: WorkerService) -> None:
    from streams.agents.locate_commands import locate_subject, publish_report
    from streams.agents.openapi import openapi_document

    settings = service.settings
    schema = SearchSchema.of(service.mappings)
    quiet_parse_errors()

    @app.page("/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/freshness")
    async def freshness_page(web: Any, request: Any) -> Any:
        """Answers only once the runtime is built: `worker_answers` (worker_process.py) reads that as ready."""
        runtime = await service.runtime()
        figures = runtime.freshness.recent()
        return web.json({"worker_id": settings.worker_id, "sources": [f.to_json() for f in figures]})

    @app.page("/openapi.json")
    async def openapi_page(web: Any, request: Any) -> Any:
        return web.json(openapi_document(schema))

    @app.page("/search")
    class SearchView(faust.web.View):
        async def get(self, request: Any, **kwargs: Any) -> Any:
            return await answer_search(
                self, request, service.search_authenticator(), service.runtime, hybrid_index.search_page, schema
            )

        async def post(self, request: Any, **kwargs: Any) -> Any:
            return await self.get(request)

        async def _not_allowed(self, request: Any, **kwargs: Any) -> Any:
            return self.json(
                {"error": f"/search takes GET or POST, not {request.method}"},
                status=405,
                headers={"Allow": "GET, POST"},
            )

        put = patch = delete = _not_allowed

    async def locate_report(subject: str, kind: str, requested_by: str) -> dict[str, Any]:
        runtime = await service.runtime()
        report = await locate_subject(settings, runtime.es, subject, kind, requested_by)
        await asyncio.get_running_loop().run_in_executor(None, publish_report, settings, report)
        return report.to_json()

    @app.page("/locate")
    async def locate_page(web: Any, request: Any) -> Any:
        return await answer_locate(web, request, service.search_authenticator(), locate_report)
