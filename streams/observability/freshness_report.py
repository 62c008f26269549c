"""Freshness reports: the window's figures as an Avro FreshnessReport (schemas/freshness_report.avsc).

Pure functions, no Kafka: the worker's timer and the tests build and encode reports the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from streams import avro
from streams.observability.freshness import SourceFigures

SCHEMA = "freshness_report"


def freshness_report_record(
    worker_id: str, window_start: datetime, window_end: datetime, figures: Iterable[SourceFigures]
) -> dict[str, Any]:
    """A FreshnessReport record; datetimes must be timezone-aware."""
    return {
        "worker_id": worker_id,
        "window_start": window_start,
        "window_end": window_end,
        "sources": [f.to_json() for f in figures],
    }


def encode_freshness_report(record: dict[str, Any], registry_url: str | None = None) -> bytes:
    return avro.encode(SCHEMA, record, registry_url)


def decode_freshness_report(data: bytes, registry_url: str | None = None) -> dict[str, Any]:
    """Decode a FreshnessReport; bad bytes or another schema raise streams.errors.DecodeError."""
    return avro.decode(SCHEMA, data, registry_url)


def report_key(worker_id: str) -> bytes:
    return worker_id.encode()
