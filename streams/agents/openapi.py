"""The OpenAPI 3.1 description of /search, served at /openapi.json.

Built from the worker's SearchSchema (its sources and its mappings' metadata fields), so that the
filters it lists are the ones this worker accepts; tests/unit/test_search_api.py holds the handler and
this description to the same parameters.
"""

from __future__ import annotations

from typing import Any

from streams import __version__
from streams.agents.web import FILTER_PREFIX, MAX_K, MAX_QUERY_CHARS, PARAMETERS, SearchSchema
from streams.elastic.hybrid_index import MAX_WINDOW

_LIST = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_INSTANT = {"type": "string", "examples": ["2024-05-01", "2024-05-01T12:00:00Z"]}


def _schemas(schema: SearchSchema) -> dict[str, dict[str, Any]]:
    """Each parameter's JSON schema (in a JSON body; a query string carries the same as text)."""
    schemas: dict[str, dict[str, Any]] = {
        "q": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS},
        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
        "offset": {"type": "integer", "minimum": 0, "maximum": MAX_WINDOW - 1, "default": 0},
        "source": {**_LIST, "description": f"one or more of {', '.join(schema.sources)}"},
        "groups": _LIST,
        "from": _INSTANT,
        "to": _INSTANT,
    }
    for name in schema.filter_fields:
        schemas[FILTER_PREFIX + name] = _LIST
    return schemas


def _description(name: str) -> str:
    if name.startswith(FILTER_PREFIX):
        field = name.removeprefix(FILTER_PREFIX)
        return f"Only documents whose `{field}` is one of these exact values (comma-separated or a list)."
    return PARAMETERS[name]


_ERRORS = {
    "400": "A bad parameter, an unknown parameter or source, or a body that is not a JSON object.",
    "401": "No credential, or one this worker does not accept (with a WWW-Authenticate challenge).",
    "405": "A method other than GET or POST.",
    "413": "A POST body over the server's limit.",
    "414": f"A GET whose q is over {MAX_QUERY_CHARS} characters.",
    "503": "The search could not be served (Elasticsearch unreachable, say).",
}

_HIT = {
    "type": "object",
    "properties": {
        "document_id": {"type": "string"},
        "source": {"type": "string"},
        "title": {"type": "string"},
        "link": {"type": "string"},
        "score": {"type": "number"},
        "metadata": {"type": "object", "description": "The mapped metadata columns of the document's row."},
        "chunks": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "chunk_id": {"type": "string"},
                    "section": {"type": "string"},
                    "highlights": {"type": "array", "items": {"type": "string"}},
                    "text": {"type": "string"},
                    "bm25_rank": {"type": ["integer", "null"]},
                    "knn_rank": {"type": ["integer", "null"]},
                    "provenance": {"type": "object"},
                },
            },
        },
    },
}

_RESPONSE = {
    "type": "object",
    "properties": {
        "query": {"type": "string"},
        "caller": {"type": "string"},
        "groups": {"type": ["array", "null"], "items": {"type": "string"}},
        "k": {"type": "integer"},
        "offset": {"type": "integer"},
        "next_offset": {"type": ["integer", "null"], "description": "The offset of the next page; null at the end."},
        "total": {
            "type": "integer",
            "description": "Documents that pass the filters and contain the query's words; the hybrid ranking "
            "may add documents close in meaning that do not.",
        },
        "total_relation": {"enum": ["eq", "gte"]},
        "filters": {"type": "object"},
        "hits": {"type": "array", "items": {"$ref": "#/components/schemas/DocumentHit"}},
    },
}


def openapi_document(schema: SearchSchema) -> dict[str, Any]:
    schemas = _schemas(schema)
    names = schema.parameters()
    error_responses = {
        status: {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status, text in _ERRORS.items()
    }
    ok = {
        "description": "The page of hits.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchResponse"}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "streams search", "version": __version__},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "DocumentHit": _HIT,
                "SearchResponse": _RESPONSE,
                "SearchBody": {
                    "type": "object",
                    "required": ["q"],
                    "additionalProperties": False,
                    "properties": {name: {**schemas[name], "description": _description(name)} for name in names},
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/search": {
                "get": {
                    "summary": "Hybrid search (BM25 and kNN fused by reciprocal rank fusion), grouped by document.",
                    "parameters": [
                        {
                            "name": name,
                            "in": "query",
                            "required": name == "q",
                            "description": _description(name),
                            "schema": {"type": "string"} if "oneOf" in schemas[name] else schemas[name],
                        }
                        for name in names
                    ],
                    "responses": {"200": ok, **error_responses},
                },
                "post": {
                    "summary": "The same search, its parameters in a JSON object.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchBody"}}},
                    },
                    "responses": {"200": ok, **{s: r for s, r in error_responses.items() if s != "414"}},
                },
            }
        },
    }
