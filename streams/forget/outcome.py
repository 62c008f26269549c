"""The bookkeeping of one request: what it removed and redacted (kept over its attempts, the
receipt's figures); where its time went is observability/phases.py's Phases."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.pipeline.mentions import MentionPattern

Key = tuple[str, str]  # (index, source)


@dataclass
class ForgetOutcome:
    """What a request removed and redacted, per index generation and source.

    The lane keeps one per request over its attempts: the next attempt finds gone what the last one
    deleted, and a receipt built from that attempt alone would certify "nothing removed"."""

    identifiers: list[str]
    removed: dict[Key, set[str]] = field(default_factory=dict)  # chunk ids deleted
    removed_documents: dict[Key, set[str]] = field(default_factory=dict)
    redacted: dict[Key, set[str]] = field(default_factory=dict)  # chunk ids rewritten without the mention
    redacted_documents: dict[Key, set[str]] = field(default_factory=dict)
    state_records: int = 0
    # How the person is written, as earlier attempts found it: an attempt that scrubbed the identity
    # record cannot find it again. Saved in the note only encrypted, with the identifiers (progress.py).
    patterns: set[MentionPattern] = field(default_factory=set)

    def note_removed(self, key: Key, chunk: str, document_id: str) -> None:
        self.removed.setdefault(key, set()).add(chunk)
        self.removed_documents.setdefault(key, set()).add(document_id)

    def note_scrubbed(self, key: Key, document_id: str) -> None:
        """A document kept with its chunks as they were, only the person taken out of its state record."""
        self.redacted_documents.setdefault(key, set()).add(document_id)

    def note_redacted(self, key: Key, chunk: str, document_id: str) -> None:
        self.redacted.setdefault(key, set()).add(chunk)
        self.redacted_documents.setdefault(key, set()).add(document_id)

    def removed_chunk_ids(self) -> set[str]:
        return {chunk for chunks in self.removed.values() for chunk in chunks}
