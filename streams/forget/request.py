"""A deletion request, typed, validated once, as schemas/deletion_request.avsc has it.

A request that can never be carried out (an empty or malformed subject) is rejected at once, with the
reason: everything else about a request is worth retrying, and retrying this one would hold up every
request behind it in the deletion lane.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from streams import avro
from streams.errors import InvalidRequest
from streams.records import SUBJECT_KINDS, subject_identifier

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
NUMERIC_KINDS = frozenset({"contact_id", "user_id"})


@dataclass(frozen=True)
class DeletionRequest:
    request_id: str
    subject: str
    subject_kind: str
    requested_by: str
    requested_at: datetime
    reason: str = ""
    report_id: str | None = None  # made from a subject access report (forget/locate.py)
    identifiers: list[str] = field(default_factory=list)  # forgotten beside the subject: those the report found

    @property
    def identifier(self) -> str:
        """The subject as the index names it (``email:ann@example.com``)."""
        return subject_identifier(self.subject_kind, self.subject)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate_deletion_request(record: dict[str, Any]) -> None:
    """Raise InvalidRequest, with the reason, for a request that can never be carried out."""
    subject = (record.get("subject") or "").strip()
    kind = record.get("subject_kind") or ""
    if not (record.get("request_id") or "").strip():
        raise InvalidRequest("the deletion request has no request_id")
    if not subject:
        raise InvalidRequest("the deletion request names no subject")
    if kind not in SUBJECT_KINDS:
        raise InvalidRequest(f"unknown subject kind {kind!r} (expected one of {', '.join(sorted(SUBJECT_KINDS))})")
    if kind == "email" and not EMAIL.fullmatch(subject):
        raise InvalidRequest(f"subject {subject!r} is not an email address")
    if kind == "name" and len(subject.split()) < 2:
        raise InvalidRequest(
            f"subject {subject!r} is one word: a name to forget needs two (a first name and a surname)"
        )
    if kind in NUMERIC_KINDS and not subject.isdigit():
        raise InvalidRequest(f"subject {subject!r} is not a numeric {kind}")
    for identifier in record.get("identifiers") or []:
        named, _, value = identifier.partition(":")
        if named not in SUBJECT_KINDS or not value.strip():
            raise InvalidRequest(f"identifier {identifier!r} is not <kind>:<value> of a known kind")


def parse_request(record: dict[str, Any]) -> DeletionRequest:
    """The decoded record as a request, validated (InvalidRequest when it can never be carried out)."""
    validate_deletion_request(record)
    return DeletionRequest(
        request_id=record["request_id"],
        subject=record["subject"],
        subject_kind=record["subject_kind"],
        requested_by=record.get("requested_by") or "",
        requested_at=record["requested_at"],
        reason=record.get("reason") or "",
        report_id=record.get("report_id"),
        identifiers=list(record.get("identifiers") or []),
    )


def decode_request(value: bytes, registry_url: str | None) -> dict[str, Any]:
    """The record as published (DecodeError when it is not one); with the registry URL a record
    framed by the Confluent serializer is read with the schema it was written with."""
    return avro.decode("deletion_request", value, registry_url)
