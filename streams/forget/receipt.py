"""The receipt of a deletion request, typed, mirroring schemas/deletion_receipt.avsc field for field.

Every receipt a request gets is built here, by one constructor per status, so each carries every
field of the schema (none left to an Avro default by omission):
- ``unsearchable``: erased and verified; the purge is pending;
- ``purged``: the same receipt once a force merge expunged the deleted documents;
- ``rejected``: a request that can never be carried out (undecodable, or invalid as written);
- ``failed``: given up after repeated errors (also dead-lettered), with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from streams.forget.outcome import ForgetOutcome, Key
from streams.forget.request import DeletionRequest
from streams.forget.verify import Verification

UNSEARCHABLE, PURGED, REJECTED, FAILED = "unsearchable", "purged", "rejected", "failed"


@dataclass(frozen=True)
class RemovedCount:
    """One index generation and source: what a request deleted (or redacted) there."""

    index: str
    source: str
    chunks: int
    documents: int
    document_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VerificationRecord:
    subject_field_hits: int
    bm25_hits: int
    knn_hits: int
    hybrid_hits: int
    verified_at: datetime

    @classmethod
    def of(cls, verification: Verification, at: datetime) -> VerificationRecord:
        return cls(
            verification.subject_field_hits,
            verification.bm25_hits,
            verification.knn_hits,
            verification.hybrid_hits,
            at,
        )


@dataclass(frozen=True)
class Receipt:
    request_id: str
    subject: str
    subject_kind: str
    identifiers: list[str]
    pattern_hashes: list[str]
    removed: list[RemovedCount]
    redacted: list[RemovedCount]
    state_records_removed: int
    dead_letters_tombstoned: int
    verification: VerificationRecord
    received_at: datetime
    unsearchable_at: datetime
    purged_at: datetime | None
    status: str
    error: str | None

    @classmethod
    def unsearchable(
        cls,
        request: DeletionRequest,
        *,
        identifiers: Iterable[str],
        pattern_hashes: Iterable[str],
        outcome: ForgetOutcome,
        generations: list[str],
        sources: list[str],
        dead_letters_tombstoned: int,
        verification: Verification,
        received_at: datetime,
        unsearchable_at: datetime,
    ) -> Receipt:
        return cls(
            request_id=request.request_id,
            subject=request.subject,
            subject_kind=request.subject_kind,
            identifiers=sorted(identifiers),
            pattern_hashes=sorted(pattern_hashes),
            removed=_counts(outcome.removed, outcome.removed_documents, generations, sources),
            redacted=_counts(outcome.redacted, outcome.redacted_documents, generations, sources),
            state_records_removed=outcome.state_records,
            dead_letters_tombstoned=dead_letters_tombstoned,
            verification=VerificationRecord.of(verification, unsearchable_at),
            received_at=received_at,
            unsearchable_at=unsearchable_at,
            purged_at=None,
            status=UNSEARCHABLE,
            error=None,
        )

    @classmethod
    def rejected(cls, request_id: str, record: dict[str, Any], reason: str, at: datetime) -> Receipt:
        """`record` as decoded (it may lack any field: that is why it was rejected)."""
        return cls._nothing_done(request_id, record.get("subject") or "", record.get("subject_kind") or "", reason, at)

    @classmethod
    def failed(cls, request: DeletionRequest, reason: str, at: datetime) -> Receipt:
        return cls._nothing_done(request.request_id, request.subject, request.subject_kind, reason, at, FAILED)

    @classmethod
    def _nothing_done(
        cls, request_id: str, subject: str, subject_kind: str, reason: str, at: datetime, status: str = REJECTED
    ) -> Receipt:
        """A receipt that certifies nothing: no identifiers, nothing removed, zero hits, and why."""
        return cls(
            request_id=request_id,
            subject=subject,
            subject_kind=subject_kind,
            identifiers=[],
            pattern_hashes=[],
            removed=[],
            redacted=[],
            state_records_removed=0,
            dead_letters_tombstoned=0,
            verification=VerificationRecord(0, 0, 0, 0, at),
            received_at=at,
            unsearchable_at=at,
            purged_at=None,
            status=status,
            error=reason,
        )

    def purged(self, at: datetime) -> Receipt:
        return replace(self, purged_at=at, status=PURGED)

    def to_dict(self) -> dict[str, Any]:
        """The record as avro.encode("deletion_receipt", ...) takes it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Receipt:
        """A receipt as avro.decode gives it back (a record written before a field existed has its default)."""
        return cls(
            **{
                **record,
                "removed": [RemovedCount(**count) for count in record["removed"]],
                "redacted": [RemovedCount(**count) for count in record.get("redacted") or []],
                "verification": VerificationRecord(**record["verification"]),
            }
        )


def _counts(
    per_key: dict[Key, set[str]], documents: dict[Key, set[str]], generations: list[str], sources: list[str]
) -> list[RemovedCount]:
    """One count per generation and source, zeros included: a receipt says where it looked."""
    return [
        RemovedCount(
            index=index,
            source=source,
            chunks=len(per_key.get((index, source), set())),
            documents=len(documents.get((index, source), set())),
            document_ids=sorted(documents.get((index, source), set())),
        )
        for index in generations
        for source in sources
    ]
