"""A small typed client for the worker's /search (its description: GET /openapi.json).

Example::

    from streams.client import SearchClient

    with SearchClient("http://127.0.0.1:16066", api_key="...") as client:
        page = client.search("printer jams", k=5, source=["tickets"], filters={"status": ["open"]},
                             created_from="2024-05-01")
        print(page.total, "documents contain the words")
        for hit in page.hits:
            print(hit.score, hit.title, hit.link, hit.metadata.get("status"))
        if page.next_offset is not None:
            more = client.search("printer jams", k=5, offset=page.next_offset)

Queries are POSTed as JSON, so any query the server takes (up to 2,000 characters) fits. A refusal
raises SearchError with the server's status and message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict


class _Answer(BaseModel):
    # A newer server may add fields: an older client keeps working.
    model_config = ConfigDict(extra="ignore", frozen=True)


class Provenance(_Answer):
    index: str = ""
    generation: int | None = None
    model: str | None = None
    chunker: str | None = None


class Chunk(_Answer):
    chunk_id: str
    section: str = ""
    highlights: list[str] = []
    text: str = ""
    bm25_rank: int | None = None
    knn_rank: int | None = None
    provenance: Provenance = Provenance()


class Hit(_Answer):
    document_id: str
    source: str
    title: str
    link: str
    score: float
    metadata: dict[str, Any] = {}
    chunks: list[Chunk] = []


class SearchResult(_Answer):
    query: str
    caller: str
    groups: list[str] | None
    hits: list[Hit]
    k: int = 10
    offset: int = 0
    next_offset: int | None = None
    total: int | None = None
    total_relation: Literal["eq", "gte"] = "eq"
    filters: dict[str, Any] = {}


class SearchError(Exception):
    """The worker refused or could not serve a search: `status` is the HTTP status, `message` its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"/search answered {status}: {message}")
        self.status, self.message = status, message


def search_body(
    query: str,
    *,
    k: int = 10,
    offset: int = 0,
    source: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    filters: Mapping[str, Sequence[str]] | None = None,
    created_from: str | None = None,
    created_to: str | None = None,
) -> dict[str, Any]:
    """The JSON body /search takes for these arguments (the parameter names of /openapi.json)."""
    body: dict[str, Any] = {"q": query, "k": k, "offset": offset}
    if source:
        body["source"] = list(source)
    if groups is not None:
        body["groups"] = list(groups)
    for name, values in (filters or {}).items():
        body[f"filter.{name}"] = list(values)
    if created_from:
        body["from"] = created_from
    if created_to:
        body["to"] = created_to
    return body


def _result(response: httpx.Response) -> SearchResult:
    if response.status_code != 200:
        try:
            message = str(response.json().get("error_description") or response.json()["error"])
        except (ValueError, KeyError, AttributeError):
            message = response.text[:200]
        raise SearchError(response.status_code, message)
    return SearchResult.model_validate(response.json())


class SearchClient:
    """Calls one worker's /search with one bearer credential (an API key or a JWT)."""

    def __init__(
        self, base_url: str, api_key: str, *, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            transport=transport,
        )

    def search(self, query: str, **options: Any) -> SearchResult:
        """One page of hits; `options` are those of `search_body`."""
        return _result(self._http.post("/search", json=search_body(query, **options)))

    def openapi(self) -> dict[str, Any]:
        response = self._http.get("/openapi.json")
        response.raise_for_status()
        return dict(response.json())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SearchClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
