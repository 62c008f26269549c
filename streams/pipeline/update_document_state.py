"""Apply part changes to a document's state, and say what the index must do about it.

This is where the *ordered* promise lives. Every document has one state record (kept in the index
itself, next to its chunks) that remembers, per row, the newest source version applied and whether
the row was deleted. A change whose version is not newer than the one remembered for its row is
stale: a replay, a duplicate or a late delivery, and it changes nothing. Delete markers are kept in
the state record (never removed), so a late older update cannot bring a deleted document back, even
after Elasticsearch has forgotten the version of a deleted chunk (`index.gc_deletes`).

The result is a diff between the state before and after a batch of changes: which parts' chunks to
(re)write, which chunk ids to delete, and which parts only need their document-level fields (title,
groups, subjects, link, visibility) refreshed. Nothing here does I/O.

Rules:
- A document is visible once its root row exists and is not deleted. Child rows that arrive first
  (a comment before its ticket, as a snapshot may deliver them) are indexed invisible and become
  visible when the root arrives.
- When the root is deleted, every chunk of the document goes; child rows that arrive later are
  remembered (their versions) but not indexed.
- For `latest` children (the wiki's revisions), the child with the highest key is the body; an older
  revision never replaces a newer one, whatever order they arrive in.
- A change that names a forgotten subject is never indexed: a root becomes a suppressed delete
  marker that holds no personal data; a child part is dropped. A change that only *mentions* a
  forgotten person in its text or title is indexed with the mention redacted (``redact``).
- Chunks carry the root's subjects only. Who wrote a part (a comment's author, a wiki revision's
  author) is kept in the state record, so a new revision by another author rewrites no chunk
  whose text is unchanged; forgetting that author finds the part's chunks through the state record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.records import ChunkText, PartChange, TextFormat, chunk_id

Chunker = Callable[[str, TextFormat], list[ChunkText]]
IsForgotten = Callable[[Iterable[str]], bool]
Redact = Callable[[str], str]


def no_redaction(text: str) -> str:
    return text


ROOT_PART = "root"


def filter_fields(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata as /search filters it (hybrid_index.FILTER_FIELDS): every value as the keyword a
    filter names it by (a null stays null, so that a partial update clears the old value), and the
    creation time, which Debezium sends as an ISO 8601 string, as a date."""
    created = metadata.get("created_at")
    return {
        "attributes": {name: _keyword(value) for name, value in metadata.items()},
        "created_at": created if isinstance(created, str) else None,
    }


def _keyword(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class RootState:
    version: int
    deleted: bool = False
    suppressed: bool = False
    table: str = ""
    title: str = ""
    groups: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    link: str = ""
    subjects: list[str] = field(default_factory=list)
    identity: bool = False
    commit_ts: str = ""
    # Identity records only: how the person is written in free text ([kind, value] pairs: their
    # full name, phone), so that forgetting them also finds their mentions in other documents.
    mentions: list[list[str]] = field(default_factory=list)


@dataclass
class PartState:
    version: int
    deleted: bool = False
    table: str = ""
    order_key: int | None = None
    chunk_hashes: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    commit_ts: str = ""
    content_hash: str = ""  # PartChange.content_hash of the row applied (what `streams verify` compares)
    about: bool = False  # the document is about this part's subjects (PartMapping.about)


@dataclass
class DocumentState:
    document_id: str
    source: str
    root: RootState | None = None
    parts: dict[str, PartState] = field(default_factory=dict)

    @property
    def visible(self) -> bool:
        return self.root is not None and not self.root.deleted

    @property
    def subjects(self) -> list[str]:
        """Every subject the document's stored data names (what a forget request looks up)."""
        names: set[str] = set(self.root.subjects if self.root else [])
        for part in self.parts.values():
            names.update(part.subjects)
        return sorted(names)

    def chunk_ids(self) -> list[str]:
        return [
            chunk_id(self.document_id, part_id, number)
            for part_id, part in self.parts.items()
            for number in range(len(part.chunk_hashes))
        ]

    def doc_fields(self) -> dict[str, Any]:
        """The document-level fields every chunk of the document carries."""
        root = self.root if self.visible else None
        return {
            "visible": self.visible,
            "title": root.title if root else "",
            "groups": list(root.groups) if root else [],
            "link": root.link if root else "",
            "metadata": dict(root.metadata) if root else {},
            **filter_fields(root.metadata if root else {}),
        }

    def chunk_subjects(self) -> list[str]:
        """The subjects every chunk carries: the root's (a part's own subjects stay in the state)."""
        return sorted(self.root.subjects) if self.root else []

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "state",
            "document_id": self.document_id,
            "source": self.source,
            "subjects": self.subjects,
            "root": None if self.root is None else self.root.__dict__,
            "parts": {part_id: part.__dict__ for part_id, part in self.parts.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DocumentState:
        root = data.get("root")
        return cls(
            document_id=data["document_id"],
            source=data["source"],
            root=None if root is None else RootState(**root),
            parts={part_id: PartState(**part) for part_id, part in (data.get("parts") or {}).items()},
        )

    def copy(self) -> DocumentState:
        return DocumentState.from_json(self.to_json())


@dataclass
class DocumentUpdate:
    """What one batch of changes to one document asks of the index."""

    state: DocumentState
    write_parts: dict[str, list[ChunkText]] = field(default_factory=dict)  # part -> its new chunks
    refresh_parts: list[str] = field(default_factory=list)  # parts whose doc-level fields changed
    delete_ids: list[str] = field(default_factory=list)
    applied: list[PartChange] = field(default_factory=list)
    stale: list[PartChange] = field(default_factory=list)
    suppressed: list[PartChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.suppressed)


def apply_changes(
    state: DocumentState | None,
    changes: list[PartChange],
    chunker: Chunker,
    is_forgotten: IsForgotten,
    redact: Redact = no_redaction,
) -> DocumentUpdate:
    """Apply `changes` (all for one document, in delivery order) to `state`.

    ``redact`` replaces mentions of forgotten people in a text before it is chunked or stored.
    """
    if not changes:
        raise ValueError("apply_changes needs at least one change")
    before = state.copy() if state else DocumentState(changes[0].document_id, changes[0].source)
    after = before.copy()
    update = DocumentUpdate(state=after)
    batch = _Batch(chunker, is_forgotten, redact, update)

    for change in changes:
        if _is_stale(after, change):
            update.stale.append(change)
            continue
        if change.role == "root":
            _apply_root(after, change, batch)
        else:
            _apply_child(after, change, batch)

    _diff(before, after, batch.new_chunks, update)
    return update


@dataclass
class _Batch:
    """What applying one batch of changes works with (how a text is chunked and redacted, who is
    forgotten) and what it gathers: the update, and the chunks of each part it rewrote."""

    chunker: Chunker
    is_forgotten: IsForgotten
    redact: Redact
    update: DocumentUpdate
    new_chunks: dict[str, list[ChunkText]] = field(default_factory=dict)


def _is_stale(state: DocumentState, change: PartChange) -> bool:
    if change.role == "root":
        return state.root is not None and change.version <= state.root.version
    part = state.parts.get(change.part_id)
    if part is None:
        return False
    if change.order_key is not None and part.order_key is not None:
        if change.order_key != part.order_key:
            # Another revision: only a newer one may replace the body; deleting an old one is a no-op.
            return change.order_key < part.order_key or change.deleted
    return change.version <= part.version


def _apply_root(state: DocumentState, change: PartChange, batch: _Batch) -> None:
    commit_ts = change.commit_ts.isoformat()
    # A document forgotten because it is about a forgotten person stays forgotten: a later edit of
    # its root may not name them (a ticket's requestors are a part of their own), yet it is theirs.
    stays_forgotten = state.root is not None and state.root.suppressed and not change.deleted
    if change.deleted or stays_forgotten or batch.is_forgotten(change.subjects):
        suppressed = not change.deleted
        state.root = RootState(version=change.version, deleted=True, suppressed=suppressed, commit_ts=commit_ts)
        _empty_parts(state)
        for part_id in list(batch.new_chunks):
            batch.new_chunks[part_id] = []
        (batch.update.suppressed if suppressed else batch.update.applied).append(change)
        return
    state.root = RootState(
        version=change.version,
        table=change.table,
        title=batch.redact(change.title or ""),
        groups=list(change.groups or ()),
        metadata=dict(change.metadata),
        link=change.link or "",
        subjects=sorted(change.subjects),
        identity=change.identity,
        commit_ts=commit_ts,
        mentions=[[kind, value] for kind, value in change.mentions],
    )
    part = PartState(version=change.version, table=change.table, commit_ts=commit_ts)
    _store_text(state, ROOT_PART, part, change, batch)
    batch.update.applied.append(change)


def _apply_child(state: DocumentState, change: PartChange, batch: _Batch) -> None:
    commit_ts = change.commit_ts.isoformat()
    part = PartState(
        version=change.version,
        table=change.table,
        order_key=change.order_key,
        commit_ts=commit_ts,
        about=change.about,
    )
    if change.about and not change.deleted and batch.is_forgotten(change.subjects):
        _suppress_document(state, change, batch.new_chunks)  # about a forgotten person: all of it goes
        state.parts[change.part_id] = part
        batch.update.suppressed.append(change)
        return
    doc_deleted = state.root is not None and state.root.deleted
    subjects = set(change.subjects)
    if not change.text and not change.about:
        # People without text of their own (a Cc, an owner, a page's authors): the forgotten ones
        # are left out, the others kept, so the document stays theirs to find and forget.
        subjects = {subject for subject in subjects if not batch.is_forgotten([subject])}
    forgotten = batch.is_forgotten(subjects | set(state.root.subjects if state.root else []))
    if change.deleted or doc_deleted or forgotten:
        part.deleted = change.deleted
        state.parts[change.part_id] = part
        batch.new_chunks[change.part_id] = []
        (batch.update.suppressed if forgotten and not change.deleted else batch.update.applied).append(change)
        return
    part.subjects = sorted(subjects)
    _store_text(state, change.part_id, part, change, batch)
    if subjects != set(change.subjects):
        part.content_hash = ""  # the row still names a forgotten person: the index does not
    batch.update.applied.append(change)


def _empty_parts(state: DocumentState) -> None:
    """Every part keeps only its version: no chunks, no subjects, no hash of row content that named one."""
    for part in state.parts.values():
        part.chunk_hashes = []
        part.subjects = []
        part.content_hash = ""


def _suppress_document(state: DocumentState, change: PartChange, new_chunks: dict[str, list[ChunkText]]) -> None:
    """Turn the document into a suppressed delete marker, keeping the versions of its parts."""
    version = state.root.version if state.root else 0
    commit_ts = state.root.commit_ts if state.root else change.commit_ts.isoformat()
    state.root = RootState(version=version, deleted=True, suppressed=True, commit_ts=commit_ts)
    _empty_parts(state)
    for part_id in state.parts:
        new_chunks[part_id] = []


def _store_text(state: DocumentState, part_id: str, part: PartState, change: PartChange, batch: _Batch) -> None:
    """Chunk the change's (redacted) text into `part`: its hashes go into the state, its chunks to the diff."""
    chunks = batch.chunker(batch.redact(change.text), change.text_format) if change.text else []
    part.chunk_hashes = [chunk.text_hash for chunk in chunks]
    part.content_hash = change.content_hash
    state.parts[part_id] = part
    batch.new_chunks[part_id] = chunks


def _diff(
    before: DocumentState,
    after: DocumentState,
    new_chunks: dict[str, list[ChunkText]],
    update: DocumentUpdate,
) -> None:
    """Turn two states into index actions, touching as little as possible."""
    doc_fields_changed = before.doc_fields() != after.doc_fields() or (
        (before.root.subjects if before.root else []) != (after.root.subjects if after.root else [])
    )
    for part_id, part in after.parts.items():
        old = before.parts.get(part_id)
        old_hashes = old.chunk_hashes if old else []
        if part_id in new_chunks and part.chunk_hashes != old_hashes:
            if doc_fields_changed:
                update.write_parts[part_id] = new_chunks[part_id]  # every chunk carries the new fields
            else:
                # Only the chunks whose text changed at their position: the others are already in
                # the index, identical. (A chunk's version is that of the row that last changed it.)
                update.write_parts[part_id] = [
                    chunk
                    for chunk in new_chunks[part_id]
                    if chunk.number >= len(old_hashes) or old_hashes[chunk.number] != chunk.text_hash
                ]
        elif part.chunk_hashes and doc_fields_changed:
            update.refresh_parts.append(part_id)
    kept = set(after.chunk_ids())
    update.delete_ids = [chunk for chunk in before.chunk_ids() if chunk not in kept]


def forget_in_state(state: DocumentState, identifiers: set[str]) -> DocumentState:
    """The state with every trace of `identifiers` removed, its version guards kept.

    If the root names a forgotten identifier, the whole document becomes a suppressed delete marker
    (every chunk carries the root's subjects, so every chunk goes). So does a part the document is
    about (`about: true`, a ticket's requestors). A part with text that names one (a comment they
    wrote) is emptied; a part without text (a ticket's Cc and owner, a page's authors) loses only the
    forgotten identifiers. Versions stay, so replays of older events are still recognized as stale.
    """
    forgotten = state.copy()
    about = any(part.about and identifiers & set(part.subjects) for part in forgotten.parts.values())
    if forgotten.root is not None and (about or identifiers & set(forgotten.root.subjects)):
        forgotten.root = RootState(
            version=forgotten.root.version, deleted=True, suppressed=True, commit_ts=forgotten.root.commit_ts
        )
        _empty_parts(forgotten)
        return forgotten
    for part in forgotten.parts.values():
        if not identifiers & set(part.subjects):
            continue
        part.content_hash = ""  # a hash of row content that named the subject
        if part.chunk_hashes:  # text they wrote: it goes
            part.chunk_hashes = []
            part.subjects = []
        else:  # only who took part: the others stay
            part.subjects = [subject for subject in part.subjects if subject not in identifiers]
    return forgotten
