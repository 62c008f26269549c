"""Avro for the topics the project owns (dead letters, deletion requests and receipts, the ledger,
freshness reports), with fastavro.

Without a schema registry, records use Avro's single-object encoding (0xC3 0x01, the schema's
64-bit Rabin fingerprint, then the body), so a reader can tell which schema wrote a record.
With `STREAMS_SCHEMA_REGISTRY_URL` set, the Confluent wire format (0x00, a 4-byte schema id, then
the body) is used; the schema id is registered once per schema.
"""

from __future__ import annotations

import io
import json
import struct
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from streams.errors import DecodeError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


@cache
def load_schema(name: str) -> Any:
    """A parsed schema from schemas/<name>.avsc."""
    return parse_schema(json.loads((SCHEMA_DIR / f"{name}.avsc").read_text()))


def _schema_fingerprint(schema: Any) -> bytes:
    canonical = to_parsing_canonical_form(schema)
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))[::-1]  # the spec wants little-endian


@cache
def _fingerprint(name: str) -> bytes:
    return _schema_fingerprint(load_schema(name))


@cache
def _writer_schemas(name: str) -> dict[bytes, Any]:
    """fingerprint -> schema for the current schema and every earlier version (schemas/history/),
    so records written before a compatible change (a field added with a default) still decode."""
    schemas = {_fingerprint(name): load_schema(name)}
    for path in sorted((SCHEMA_DIR / "history").glob(f"{name}.*.avsc")):
        schema = parse_schema(json.loads(path.read_text()))
        schemas[_schema_fingerprint(schema)] = schema
    return schemas


def encode(name: str, record: dict[str, Any], registry_url: str | None = None) -> bytes:
    schema = load_schema(name)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, record)
    if registry_url:
        return CONFLUENT_MAGIC + struct.pack(">I", _registry_id(registry_url, name)) + body.getvalue()
    return SINGLE_OBJECT_MAGIC + _fingerprint(name) + body.getvalue()


def decode(name: str, data: bytes) -> dict[str, Any]:
    """Decode a record written by `encode`, in either framing; a wrong schema or bad bytes is a DecodeError."""
    writer = load_schema(name)
    if data[:2] == SINGLE_OBJECT_MAGIC:
        if data[2:10] not in _writer_schemas(name):
            raise DecodeError(f"record was not written with schema {name} (fingerprint mismatch)")
        writer = _writer_schemas(name)[data[2:10]]
        body = data[10:]
    elif data[:1] == CONFLUENT_MAGIC and len(data) >= 5:
        body = data[5:]
    else:
        raise DecodeError(f"not an Avro {name} record: unknown framing {data[:2]!r}")
    try:
        record: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(body), writer, load_schema(name))  # type: ignore[assignment]
    except Exception as exc:  # fastavro raises a variety of errors on corrupt input
        raise DecodeError(f"corrupt Avro {name} record: {exc}") from exc
    return record


@cache
def _registry_id(registry_url: str, name: str) -> int:
    """Register (idempotently) the schema under subject <topic-name>-value and return its id."""
    schema_text = json.dumps(json.loads((SCHEMA_DIR / f"{name}.avsc").read_text()))
    request = urllib.request.Request(
        f"{registry_url.rstrip('/')}/subjects/{name}-value/versions",
        data=json.dumps({"schema": schema_text}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(json.load(response)["id"])
