"""The OpenAPI 3.1 description of /search and /locate, served at /openapi.json.

Built from the worker's SearchSchema (its sources and its mappings' metadata fields), so that the
filters it lists are the ones this worker accepts; tests/unit/test_search_api.py holds the handler and
this description to the same parameters. The subject access report's shape is its Avro schema's
(schemas/subject_report.avsc), so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from streams import __version__, avro
from streams.agents.web import FILTER_PREFIX, MAX_K, MAX_QUERY_CHARS, PARAMETERS, SearchSchema
from streams.elastic.hybrid_index import MAX_WINDOW
from streams.records import SUBJECT_KINDS

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


_AVRO_TYPES = {"string": "string", "boolean": "boolean", "int": "integer", "long": "integer", "double": "number"}


def json_schema(avro_type: Any) -> dict[str, Any]:
    """The JSON schema of an Avro type as the API writes it: records, arrays, unions with null, the
    primitive types, and timestamps as ISO 8601 text (as SubjectReport.to_json writes them)."""
    if isinstance(avro_type, list):  # a union: the same value, or null
        kinds = [json_schema(branch) for branch in avro_type if branch != "null"]
        shown = kinds[0] if len(kinds) == 1 else {"oneOf": kinds}
        return {"oneOf": [shown, {"type": "null"}]} if "null" in avro_type else shown
    if isinstance(avro_type, str):
        if avro_type not in _AVRO_TYPES:
            raise ValueError(f"no JSON schema for the Avro type {avro_type!r}")
        return {"type": _AVRO_TYPES[avro_type]}
    if avro_type.get("logicalType", "").startswith("timestamp"):
        return {"type": "string", "format": "date-time"}
    if avro_type["type"] == "array":
        return {"type": "array", "items": json_schema(avro_type["items"])}
    if avro_type["type"] == "record":
        properties = {
            field["name"]: {**json_schema(field["type"]), **({"description": field["doc"]} if "doc" in field else {})}
            for field in avro_type["fields"]
        }
        return {"type": "object", "required": list(properties), "properties": properties}
    return json_schema(avro_type["type"])


def _locate_path(error_responses: dict[str, Any]) -> dict[str, Any]:
    report = json_schema(avro.load_schema("subject_report"))
    return {
        "get": {
            "summary": "The subject access report: every chunk, state record and dead letter that names or "
            "concerns a person, over every index generation, each with why it matched. Changes nothing; "
            "the report is also published on the reports topic. Operator credentials only.",
            "parameters": [
                {"name": "subject", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1}},
                {
                    "name": "kind",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": list(SUBJECT_KINDS), "default": "email"},
                },
            ],
            "responses": {
                "200": {"description": "The report.", "content": {"application/json": {"schema": report}}},
                "403": {
                    "description": "A credential that is not an operator's (a search key, a JWT).",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
                **{status: error_responses[status] for status in ("400", "401", "503")},
            },
        }
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
            },
            "/locate": _locate_path(error_responses),
        },
    }
