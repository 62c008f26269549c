"""The receipt of a deletion request, typed, mirroring schemas/deletion_receipt.avsc field for field.

Every receipt a request gets is built here, by one constructor per status, so each carries every
field of the schema (none left to an Avro default by omission). The status says plainly what was found:
- ``nothing_indexed``: searched everywhere, verified, and nothing about the subject was held (no
  index entry, no state record, no dead letter): there is nothing to purge, so no later receipt;
- ``unsearchable``: erased and verified; the purge is pending;
- ``purged``: the same receipt once a force merge expunged the deleted documents;
- ``rejected``: a request that can never be carried out (undecodable, or invalid as written);
- ``failed``: given up after repeated errors (also dead-lettered), with the reason.

A rejected or failed receipt ran no erasure: it has no verification and no time to unsearchable
(`verification` and `unsearchable_at` are None; the Avro record, which older readers require to hold
both, carries zeros and the time received, and `from_dict` reads them back as None).

`to_json` is the receipt as people and `streams receipt verify` read it, and what is signed
(forget/signing.py): the chain fields (`chain`, `sequence`, `previous_hash`, `signing_key`,
`signature`) are set by the publisher, after the receipt is built.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from streams.forget.outcome import ForgetOutcome, Key
from streams.forget.request import DeletionRequest
from streams.forget.verify import Verification

UNSEARCHABLE, PURGED, REJECTED, FAILED = "unsearchable", "purged", "rejected", "failed"
NOTHING_INDEXED = "nothing_indexed"
GIVEN_UP = (REJECTED, FAILED)  # ran no erasure and no verification
FINAL = (NOTHING_INDEXED, PURGED, REJECTED, FAILED)  # no later receipt follows one of these
_INSTANTS = ("received_at", "unsearchable_at", "purged_at")


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
    verification: VerificationRecord | None
    received_at: datetime
    unsearchable_at: datetime | None
    purged_at: datetime | None
    status: str
    error: str | None
    report_id: str | None = None  # the subject access report the request was made from
    # Set by the publisher (forget/signing.py): where the receipt sits in its writer's chain, and its signature.
    chain: str = ""
    sequence: int = 0
    previous_hash: str = ""
    signing_key: str = ""
    signature: str = ""

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
        """Erased and verified: `unsearchable`, or `nothing_indexed` when nothing at all was held."""
        held = any(outcome.removed.values()) or any(outcome.redacted.values())
        held = held or bool(outcome.state_records or dead_letters_tombstoned)
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
            status=UNSEARCHABLE if held else NOTHING_INDEXED,
            error=None,
            report_id=request.report_id,
        )

    @classmethod
    def rejected(cls, request_id: str, record: dict[str, Any], reason: str, at: datetime) -> Receipt:
        """`record` as decoded (it may lack any field: that is why it was rejected)."""
        return cls._nothing_done(request_id, record.get("subject") or "", record.get("subject_kind") or "", reason, at)

    @classmethod
    def failed(cls, request: DeletionRequest, reason: str, at: datetime) -> Receipt:
        receipt = cls._nothing_done(request.request_id, request.subject, request.subject_kind, reason, at, FAILED)
        return replace(receipt, report_id=request.report_id)

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
            verification=None,
            received_at=at,
            unsearchable_at=None,
            purged_at=None,
            status=status,
            error=reason,
        )

    def purged(self, at: datetime) -> Receipt:
        """The receipt of the purge: a new receipt, in the chain of whoever publishes it."""
        return replace(self, purged_at=at, status=PURGED, **_UNSEALED)

    def to_dict(self) -> dict[str, Any]:
        """The record as avro.encode("deletion_receipt", ...) takes it. Older readers require a
        verification and a time to unsearchable: a receipt that ran neither carries zeros and the time
        received, which `status` (rejected, failed) says mean nothing."""
        record = asdict(self)
        if self.verification is None:
            record["verification"] = asdict(VerificationRecord(0, 0, 0, 0, self.received_at))
        if self.unsearchable_at is None:
            record["unsearchable_at"] = self.received_at
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Receipt:
        """A receipt as avro.decode gives it back (a record written before a field existed has its default)."""
        given_up = record["status"] in GIVEN_UP
        known = {f.name for f in fields(cls)}
        return cls(
            **{
                **{name: value for name, value in record.items() if name in known},
                "removed": [RemovedCount(**count) for count in record["removed"]],
                "redacted": [RemovedCount(**count) for count in record.get("redacted") or []],
                "verification": None if given_up else VerificationRecord(**record["verification"]),
                "unsearchable_at": None if given_up else record["unsearchable_at"],
            }
        )

    def to_json(self) -> dict[str, Any]:
        """The receipt as JSON, as printed and as signed: times in UTC to the millisecond (what Avro
        keeps), and no field that holds nothing (no verification for a request that ran none)."""
        record = asdict(self)
        if self.verification is not None:
            record["verification"]["verified_at"] = instant(self.verification.verified_at)
        for name in _INSTANTS:
            if record[name] is not None:
                record[name] = instant(record[name])
        return {name: value for name, value in record.items() if value is not None}

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> Receipt:
        """A receipt as `to_json` wrote it (a file `streams forget --json` printed)."""
        known = {f.name for f in fields(cls)}
        values = {name: value for name, value in record.items() if name in known}
        values.setdefault("error", None)
        for name in _INSTANTS:
            values[name] = datetime.fromisoformat(record[name]) if record.get(name) else None
        values["removed"] = [RemovedCount(**count) for count in record.get("removed") or []]
        values["redacted"] = [RemovedCount(**count) for count in record.get("redacted") or []]
        verification = record.get("verification")
        values["verification"] = (
            None
            if verification is None
            else VerificationRecord(
                **{**verification, "verified_at": datetime.fromisoformat(verification["verified_at"])}
            )
        )
        return cls(**values)


# What a receipt holds before its publisher seals it, and what `purged` resets for the purge's receipt.
_UNSEALED: dict[str, Any] = {"chain": "", "sequence": 0, "previous_hash": "", "signing_key": "", "signature": ""}


def instant(moment: datetime) -> str:
    """A time as a receipt states it: UTC, to the millisecond (timestamp-millis keeps no more)."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000).isoformat(timespec="milliseconds")


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
