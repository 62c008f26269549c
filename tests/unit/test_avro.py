"""The project's own Avro records: single-object framing without a registry, confluent-kafka's
serializers (Confluent wire format) with one. `mock://` is confluent-kafka's in-memory registry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from streams import avro
from streams.errors import DecodeError


def _request() -> dict[str, Any]:
    return {
        "request_id": "r-1",
        "subject": "ada@example.com",
        "subject_kind": "email",
        "requested_by": "tests",
        "requested_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "reason": "right to be forgotten",
        "report_id": None,
        "identifiers": [],
    }


def test_without_a_registry_records_use_single_object_encoding() -> None:
    data = avro.encode("deletion_request", _request())
    assert data[:2] == avro.SINGLE_OBJECT_MAGIC
    assert avro.decode("deletion_request", data) == _request()


def test_with_a_registry_records_use_the_confluent_wire_format_and_the_schema_name_subject() -> None:
    url = f"mock://{uuid.uuid4().hex}"
    data = avro.encode("deletion_request", _request(), url)
    assert data[:1] == avro.CONFLUENT_MAGIC
    schema_id = int.from_bytes(data[1:5], "big")
    registered = avro._registry(url).get_latest_version("deletion_request-value")
    assert registered.schema_id == schema_id
    assert avro.decode("deletion_request", data, url) == _request()
    assert avro.decode("deletion_request", data) == _request()  # a reader without the URL uses our schema


def test_a_record_of_another_schema_is_a_decode_error() -> None:
    data = avro.encode("deletion_request", _request())
    with pytest.raises(DecodeError, match="fingerprint"):
        avro.decode("deletion_receipt", data)


@pytest.mark.parametrize("data", [b"", b"{json}", avro.SINGLE_OBJECT_MAGIC + b"\x00" * 8, b"\x00\x00\x00\x00\x07\xff"])
def test_bytes_that_are_not_our_records_are_decode_errors(data: bytes) -> None:
    with pytest.raises(DecodeError):
        avro.decode("deletion_request", data)


def test_a_registry_record_with_an_unknown_schema_id_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        avro.decode("deletion_request", b"\x00\x00\x00\x03\xe7\x02x", f"mock://{uuid.uuid4().hex}")
