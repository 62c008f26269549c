"""Avro for the topics the project owns (dead letters, deletion requests and receipts, the ledger,
freshness reports).

With `STREAMS_SCHEMA_REGISTRY_URL` set, records are written by confluent-kafka's own
`AvroSerializer` (the Confluent wire format: 0x00, the 4-byte schema id, the body; the schema is
registered under the subject `<schema name>-value`), and read back by its `AvroDeserializer` with
the writer's schema from the registry when the reader is given the URL.

Without a registry the Confluent format cannot be written (it needs a schema id), and the local
stack runs none (Kafka, Connect, Elasticsearch, PostgreSQL, MariaDB: see streams/stack/), so the
records use Avro's own single-object encoding instead (0xC3 0x01, the schema's 64-bit Rabin
fingerprint, then the body), written with fastavro, which confluent-kafka's serializers use too.
That framing is the SINGLE_OBJECT_MAGIC branches of `encode` and `decode` and nothing else.
"""

from __future__ import annotations

import io
import json
from functools import cache
from typing import TYPE_CHECKING, Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from streams.errors import DecodeError
from streams.resources import schemas_dir

if TYPE_CHECKING:
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


@cache
def schema_text(name: str) -> str:
    return (schemas_dir() / f"{name}.avsc").read_text()


@cache
def load_schema(name: str) -> Any:
    """A parsed schema from schemas/<name>.avsc."""
    return parse_schema(json.loads(schema_text(name)))


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
    for path in sorted((schemas_dir() / "history").glob(f"{name}.*.avsc")):
        schema = parse_schema(json.loads(path.read_text()))
        schemas[_schema_fingerprint(schema)] = schema
    return schemas


def encode(name: str, record: dict[str, Any], registry_url: str | None = None) -> bytes:
    if registry_url:
        from confluent_kafka.serialization import MessageField, SerializationContext

        data = _serializer(registry_url, name)(record, SerializationContext(name, MessageField.VALUE))
        assert data is not None  # only a None record serializes to None
        return data
    body = io.BytesIO()
    fastavro.schemaless_writer(body, load_schema(name), record)
    return SINGLE_OBJECT_MAGIC + _fingerprint(name) + body.getvalue()


def decode(name: str, data: bytes, registry_url: str | None = None) -> dict[str, Any]:
    """Decode a record written by `encode`, in either framing; a wrong schema or bad bytes is a DecodeError.

    A Confluent-framed record is read with the writer's schema from the registry when `registry_url`
    is given; without it, with our own schema (right as long as this project is its only writer)."""
    try:
        if data[:1] == CONFLUENT_MAGIC and len(data) >= 5 and registry_url:
            from confluent_kafka.serialization import MessageField, SerializationContext

            decoded = _deserializer(registry_url, name)(data, SerializationContext(name, MessageField.VALUE))
            if not isinstance(decoded, dict):
                raise DecodeError(f"Avro {name} record decoded to {type(decoded).__name__}, not a record")
            return decoded
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
        record = fastavro.schemaless_reader(io.BytesIO(body), writer, load_schema(name))
    except DecodeError:
        raise
    except Exception as exc:  # fastavro and the registry raise a variety of errors on corrupt input
        raise DecodeError(f"corrupt Avro {name} record: {exc}") from exc
    if not isinstance(record, dict):
        raise DecodeError(f"Avro {name} record decoded to {type(record).__name__}, not a record")
    return record


@cache
def _registry(registry_url: str) -> Any:
    from confluent_kafka.schema_registry import SchemaRegistryClient

    # new_client, not the constructor: a mock:// URL gives the in-memory registry the unit tests use.
    return SchemaRegistryClient.new_client({"url": registry_url})


@cache
def _serializer(registry_url: str, name: str) -> AvroSerializer:
    from confluent_kafka.schema_registry.avro import AvroSerializer

    subject = f"{name}-value"
    return AvroSerializer(
        _registry(registry_url),
        schema_text(name),
        conf={"subject.name.strategy": lambda _ctx, _record_name: subject},
    )


@cache
def _deserializer(registry_url: str, name: str) -> AvroDeserializer:
    from confluent_kafka.schema_registry.avro import AvroDeserializer

    return AvroDeserializer(_registry(registry_url), schema_text(name))
