"""The records that flow through the pipeline, in the order they flow.

decode -> ChangeEvent -> (mapping) PartChange -> (routing) RoutedChange
       -> (chunking) ChunkText -> (embedding) -> index actions

A *document* is what search returns (a wiki page, a ticket, a CRM contact or note). A document is
made of *parts*: its root row (title, description, metadata, groups) and its child rows (each ticket
comment; the newest wiki revision). Every part is chunked on its own, so a change to one comment
re-chunks only that comment. Every part carries the *version* of the row it came from: a number
that grows with the source's log position, so that the newest state always wins.
"""

from __future__ import annotations

import enum
import hashlib
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal


class Op(enum.StrEnum):
    CREATE = "c"
    READ = "r"  # a row read by a snapshot
    UPDATE = "u"
    DELETE = "d"


@dataclass(frozen=True)
class Origin:
    """Where an event was read from: the coordinates a dead letter or a log line needs."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class RawMessage:
    """One Kafka record as it was read: its origin, its key and value bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def origin(self) -> Origin:
        return Origin(self.topic, self.partition, self.offset)


@dataclass(frozen=True)
class ChangeEvent:
    """One decoded Debezium change to one row."""

    source: str  # the connector's topic prefix: "wiki", "tickets", "crm"
    table: str
    op: Op
    key: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    version: int  # monotonically comparable per row (Postgres LSN; MariaDB binlog file+position+row)
    commit_ts: datetime  # timezone-aware source commit time
    origin: Origin | None = None
    snapshot: bool = False
    # The source transaction that committed it (PostgreSQL's txId, MariaDB's GTID, else Debezium's
    # transaction metadata id); None when the event names none.
    transaction: str | None = None
    # Its place among its transaction's events (Debezium's transaction metadata `total_order`, from 1).
    transaction_order: int | None = None

    @property
    def row(self) -> dict[str, Any]:
        """The row's newest image: the after image, or the before image of a delete."""
        image = self.after if self.op is not Op.DELETE else self.before
        return image or {}


# "email" and "email_html": a message in a thread (a ticket's reply or comment), chunked without the
# quoted history it carries.
TextFormat = Literal["plain", "wikitext", "html", "email", "email_html"]


@dataclass(frozen=True)
class PartChange:
    """What one change event means for one part of one document."""

    source: str
    table: str
    document_id: str  # "tickets/ticket/42"
    part_id: str  # "root", "ticket_comments/17", "revision"
    role: Literal["root", "child"]
    deleted: bool
    version: int
    commit_ts: datetime
    text: str = ""
    text_format: TextFormat = "plain"
    subjects: frozenset[str] = frozenset()  # "email:alice@example.com", "contact_id:17"
    order_key: int | None = None  # for "latest" children: the child's key; the highest wins
    about: bool = False  # the document is about this part's subjects (a ticket's requestors)
    # Document-level fields, set on root parts only:
    title: str | None = None
    groups: tuple[str, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    link: str | None = None
    identity: bool = False  # the row's subjects all name the same person
    # Identity rows only: how the person is written in free text, (kind, value) pairs such as
    # ("name", "Priya Park") and ("phone", "+1-555-555-0123"), for finding their mentions.
    mentions: tuple[tuple[str, str], ...] = ()
    origin: Origin | None = None
    snapshot: bool = False  # read by a Debezium snapshot (initial or incremental), not a live change
    # A hash of everything the mapping took from the row (text, title, groups, metadata, subjects,
    # link): stored per part in the state record, so `streams verify` can see a lost update.
    content_hash: str = ""


@dataclass(frozen=True)
class RoutedChange:
    """A Debezium record as the router decoded and mapped it, which is all the indexer needs: the part
    change (None for a heartbeat, which only moves the source's capture clock), its source and commit
    time, and the Debezium record itself, which a dead letter keeps for replay."""

    message: RawMessage
    source: str
    commit_ts: datetime
    change: PartChange | None


@dataclass(frozen=True)
class UnreadableRecord:
    """A record the indexer cannot read (not a routed change, or one that no longer decodes or maps):
    a dead letter naming `message`'s origin."""

    message: RawMessage
    error: Exception


@dataclass(frozen=True)
class ChunkText:
    """One chunk of one part, before embedding. `number` is its position within the part."""

    number: int
    text: str
    section: str = ""  # the heading path the chunk sits under, if any

    @property
    def text_hash(self) -> str:
        return text_hash(self.text)


# What a subject can be: the kinds the document mappings extract, and the kinds a deletion request names.
# `name` is a person's real name (folded: case, accents and spacing do not matter); `mediawiki_user` and
# `rt_user` are account names in those applications, scoped per application (one name may be two people).
SUBJECT_KINDS = ("email", "contact_id", "user_id", "name", "mediawiki_user", "rt_user")


def normalize_email(address: str) -> str:
    """The one canonical form of an email address: emails are matched case-insensitively, so a
    deletion request finds every spelling a source stored (mentions.normalize folds written
    variants, ``mailto:`` and ``name [at] domain``, onto this same form)."""
    return address.strip().lower()


def subject_identifier(kind: str, value: str) -> str:
    """A subject as the index stores it in `subjects` (``email:ann@example.com``, ``contact_id:17``)."""
    text = value.strip()
    if kind == "email":
        text = normalize_email(text)
    elif kind == "name":
        text = normalize_name(text)
    return f"{kind}:{text}"


def normalize_name(written: str) -> str:
    """A real name as an identifier: case and accents dropped, one space between words ("José  Núñez",
    "jose nunez" are one identifier)."""
    decomposed = unicodedata.normalize("NFKD", written.replace("’", "'"))
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(folded.split())


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def chunk_id(document_id: str, part_id: str, number: int) -> str:
    return f"{document_id}#{part_id}#{number}"
