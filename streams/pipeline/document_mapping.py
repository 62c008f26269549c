"""The declarative mappings in connectors/*.mapping.yaml, loaded strictly, and applied to change events.

A mapping file is configuration that operators edit, so a typo must fail at load time with the file
and the key named (MappingError), not as a silently empty field in production. Unknown keys are
errors for the same reason.

Applying a one-hop mapping is a pure function of one event: a root row becomes the document's "root"
part, a child row becomes a part of its parent's document. Nothing here looks at other rows, so events
can be applied in any order; the version on each part decides which state wins downstream.

A document whose mapping reads through joins (a root `path:` or `parts:` with a `path:` of hops, for a
real application's schema) is not mapped from the event: the event is a trigger, and
streams/sources/read_paths.py reads the affected parts from the source (see docs/design.md).
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from streams.errors import MappingError
from streams.pipeline.mentions import MENTION_KINDS
from streams.records import ChangeEvent, Op, PartChange, TextFormat, subject_identifier

ChildMode = Literal["each", "latest"]
# A part read through a path: "one" row (a pointer chain: page -> latest revision -> ... -> text), "all"
# rows folded into one part (a page's authors), or "each" leaf row a part of its own (RT attachments).
PartMode = Literal["one", "all", "each"]
_FORMATTER = string.Formatter()


# The mapping file's schema, and the objects the pipeline applies: pydantic models that forbid unknown
# keys, so a typo fails at load time with the field's path (see `_describe`).

Name = Annotated[str, StringConstraints(strict=True, strip_whitespace=True, min_length=1)]


def _check_template(raw: str) -> str:
    try:
        fields = list(_FORMATTER.parse(raw))
    except ValueError as exc:
        raise ValueError(f"{raw!r} is not a valid template: {exc}") from exc
    for _, name, spec, conversion in fields:
        if name is not None and (not _is_column(name) or spec or conversion):
            raise ValueError(f"placeholder {{{name}}} must be a plain column name (or table.column on a path)")
    return raw


def _is_column(name: str) -> bool:
    parts = name.split(".")
    return len(parts) <= 2 and all(part.isidentifier() for part in parts)


def _column_name(raw: str) -> str:
    if not _is_column(raw):
        raise ValueError(f"{raw!r} is not a column (column, or table.column on a path)")
    return raw


ColumnName = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=1), AfterValidator(_column_name)
]


Template = Annotated[str, StringConstraints(strict=True, min_length=1), AfterValidator(_check_template)]


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Node):
    """A value built from a row: one column's value, or a ``str.format`` template over columns."""

    column: Name | None = None
    template: Template | None = None

    def render(self, row: Mapping[str, Any]) -> str:
        if self.column is not None:
            return _as_text(_column(row, self.column))
        assert self.template is not None
        return "".join(
            literal + (_as_text(_column(row, name)) if name is not None else "")
            for literal, name, _, _ in _FORMATTER.parse(self.template)
        )

    def columns(self) -> set[str]:
        if self.column is not None:
            return {self.column}
        assert self.template is not None
        return {name for _, name, _, _ in _FORMATTER.parse(self.template) if name is not None}


def _mentions(raw: Any) -> Any:
    if not isinstance(raw, dict):
        return raw
    if unknown := sorted(set(raw) - set(MENTION_KINDS)):
        raise ValueError(f"unknown mention kind {unknown[0]!r} (expected {', '.join(MENTION_KINDS)})")
    return tuple((kind, _title(raw[kind])) for kind in MENTION_KINDS if kind in raw)


def _title(raw: Any) -> Any:
    """A title is a column name, or a template when it contains a ``{column}`` placeholder."""
    if isinstance(raw, str):
        return {"template": raw} if "{" in raw else {"column": raw}
    return raw


def _link(raw: Any) -> Any:
    return {"template": raw} if isinstance(raw, str) else raw


class Decode(_Node):
    """How a stored body is turned into text, by the values of other columns of its row.

    ``flags``: MediaWiki's ``text.old_flags`` (utf-8, gzip = raw deflate; external and anything else
    cannot be read here). ``encoding``: RT's ``contentencoding`` (base64, quoted-printable, none), with
    ``content_type`` (text/plain and text/html are indexed, other types skipped) and ``parent`` (the
    MIME parent's key in the same table, for finding broken trees). ``charset``: a column naming the
    charset; UTF-8 without one."""

    flags: ColumnName | None = None
    encoding: ColumnName | None = None
    content_type: ColumnName | None = None
    charset: ColumnName | None = None
    parent: ColumnName | None = None

    def columns(self) -> set[str]:
        return {c for c in (self.flags, self.encoding, self.content_type, self.charset, self.parent) if c}


class Body(_Node):
    column: ColumnName | None = None
    template: Template | None = None
    format: TextFormat = "plain"
    decode: Decode | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Body:
        if (self.column is None) == (self.template is None):
            raise ValueError("needs exactly one of column or template")
        if self.decode is not None and self.column is None:
            raise ValueError("decode needs a column (a stored body), not a template")
        return self

    @cached_property
    def text(self) -> Text:  # built once: every event's render goes through it
        return Text(column=self.column, template=self.template)


Scalar = str | int | float | bool


def _wanted(value: Any, wanted: Scalar | tuple[Scalar, ...]) -> bool:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    options = wanted if isinstance(wanted, tuple) else (wanted,)
    return value in options or str(value) in {str(option) for option in options}


class Subject(_Node):
    """A column that names a person (or another forgettable subject), e.g. ``email:alice@example.com``;
    ``where`` keeps only the rows whose columns hold the values (Tryton's contact mechanisms: the
    ``value`` of a row of type email is an e-mail address, of type phone a phone number)."""

    kind: Name
    column: ColumnName
    where: dict[ColumnName, Scalar | tuple[Scalar, ...]] = {}

    def columns(self) -> set[str]:
        return {self.column, *self.where}

    def value(self, row: Mapping[str, Any]) -> str | None:
        if not all(_wanted(row.get(column), wanted) for column, wanted in self.where.items()):
            return None
        raw = row.get(self.column)
        if raw is None:
            return None
        text = str(raw).strip()
        return subject_identifier(self.kind, text) if text else None


class Groups(_Node):
    """Access groups from a column (a list, or text split on ``split``) or a template, each given
    ``prefix``. A mapping may list several: the first that yields any group gives the document's
    (MediaWiki: a page's read restrictions where set, else its namespace). An entry with ``also`` is
    no alternative: its groups are added to the document's, whatever the others give (RT: the groups
    its ACL lets see the ticket, besides the ticket's queue)."""

    column: ColumnName | None = None
    template: Template | None = None
    split: Annotated[str, StringConstraints(strict=True, min_length=1)] | None = None
    prefix: str = ""
    also: StrictBool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> Groups:
        if (self.column is None) == (self.template is None):
            raise ValueError("needs exactly one of column or template")
        return self

    def columns(self) -> set[str]:
        return Text(column=self.column, template=self.template).columns()

    def values(self, row: Mapping[str, Any]) -> tuple[str, ...]:
        if self.template is not None:
            rendered = Text(template=self.template).render(row).strip()
            return (self.prefix + rendered,) if rendered else ()
        assert self.column is not None
        raw = row.get(self.column)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        if raw is None:
            items: Iterable[Any] = ()
        elif isinstance(raw, str):
            items = raw.split(self.split) if self.split else [raw]
        elif isinstance(raw, list | tuple):
            items = raw
        else:
            raise MappingError(f"groups column {self.column!r} holds a {type(raw).__name__}, not a list")
        cleaned = (str(item).strip() for item in items if item is not None)
        return tuple(dict.fromkeys(self.prefix + item for item in cleaned if item))


def _groups_list(raw: Any) -> Any:
    if isinstance(raw, dict):
        return (raw,)
    if raw is not None and not isinstance(raw, list | tuple):
        raise ValueError(f"must be a mapping, not {type(raw).__name__}")
    return raw


def document_groups(groups: tuple[Groups, ...], rows: Iterable[Mapping[str, Any]]) -> tuple[str, ...] | None:
    """The first of `groups` that yields any group over `rows`, and every ``also`` entry's groups (None
    when the mapping names none)."""
    if not groups:
        return None
    rows = list(rows)

    def found(entry: Groups) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value for row in rows for value in entry.values(row)))

    first = next((values for entry in groups if not entry.also if (values := found(entry))), ())
    return tuple(dict.fromkeys((*first, *(value for entry in groups if entry.also for value in found(entry)))))


class Join(_Node):
    """This hop's ``column`` equals ``to`` (``table.column`` of the root or an earlier hop); ``prefix``
    when the earlier column holds the value with a literal before it (MediaWiki's ``tt:<old_id>``),
    ``column_prefix`` when this hop's column does (a polymorphic reference, Tryton's ``ir_note.resource``
    ``'party.party,<id>'``: only the rows that name this table join).

    Or, instead of ``to``, a constant ``value``: the hop's rows do not depend on any row of the
    document's (RT's system-wide rights, ``acl.objectid = 1`` where ``objecttype = 'RT::System'``), so
    every document joins the same rows, and a change to one of them touches every document."""

    column: Name
    to: ColumnName | None = None
    value: Scalar | None = None
    prefix: str = ""
    column_prefix: str = ""

    @model_validator(mode="after")
    def _qualified(self) -> Join:
        if (self.to is None) == (self.value is None):
            raise ValueError("needs exactly one of to or value")
        if self.to is not None and "." not in self.to:
            raise ValueError(f"to {self.to!r} must be table.column")
        if self.prefix and self.column_prefix:
            raise ValueError("takes prefix or column_prefix, not both")
        if self.value is not None and (self.prefix or self.column_prefix):
            raise ValueError("a join on a constant value takes no prefix or column_prefix")
        return self

    @property
    def anchored(self) -> bool:
        """Whether the hop joins a constant (no earlier row)."""
        return self.value is not None

    @property
    def to_table(self) -> str:
        assert self.to is not None, "a join on a constant value joins no table"
        return self.to.split(".", 1)[0]

    @property
    def to_column(self) -> str:
        assert self.to is not None, "a join on a constant value joins no column"
        return self.to.split(".", 1)[1]


def _names(raw: Any) -> Any:
    return (raw,) if isinstance(raw, str) else raw


class Hop(_Node):
    """One key lookup of a path: rows of ``table`` joined to an earlier table, kept when every
    ``where`` column equals its value (or one of its list of values). ``as`` names the hop where a
    path reads one table twice (RT's ``acl``: the rights on the ticket's queue, and the system's);
    later hops' joins and the mapping's ``table.column`` names then use that name."""

    table: Name
    as_: Name | None = Field(default=None, alias="as")
    join: Join
    key: Annotated[tuple[Name, ...], BeforeValidator(_names)] = ()
    where: dict[Name, Scalar | tuple[Scalar, ...]] = {}

    @property
    def ref(self) -> str:
        """The name the mapping's columns and later joins use for this hop."""
        return self.as_ or self.table

    def matches(self, row: Mapping[str, Any]) -> bool:
        """Whether a row of this table passes the hop's filters (a delete's before-image; a column the
        image lacks cannot rule it out)."""
        for column, wanted in self.where.items():
            if column not in row:
                continue
            if not _wanted(row.get(column), wanted):
                return False
        joined = row.get(self.join.column)
        if isinstance(joined, bytes):
            joined = joined.decode("utf-8", "replace")
        if self.join.value is not None and self.join.column in row and not _wanted(joined, self.join.value):
            return False
        return not (
            self.join.column_prefix and joined is not None and not str(joined).startswith(self.join.column_prefix)
        )


HopPath = Annotated[tuple[Hop, ...], Field(min_length=1)]


class PartMapping(_Node):
    """A part read through a path of hops from the root table (a real application's schema). Columns
    are ``table.column`` of any hop (or of the root); a bare name is the last hop's."""

    name: Name
    mode: PartMode
    path: HopPath
    body: Body | None = None
    subjects: tuple[Subject, ...] = ()
    # The document is about the people of this part (a ticket's requestors): forgetting one of them
    # removes the whole document, as a subject of the root does. Without it, forgetting one of the
    # part's people takes only them out of the part (a Cc, an owner, a page's authors).
    about: StrictBool = False

    @property
    def leaf(self) -> Hop:
        return self.path[-1]

    @model_validator(mode="after")
    def _each_has_key(self) -> PartMapping:
        if self.mode == "each" and not self.path[-1].key:
            raise ValueError(f"mode each needs a key on its last hop ({self.path[-1].table})")
        if self.about and not self.subjects:
            raise ValueError(f"part {self.name}: about needs subjects (the people the document is about)")
        return self


class ChildMapping(_Node):
    table: Name
    key: Name
    parent: Name
    mode: ChildMode
    body: Body | None = None
    subjects: tuple[Subject, ...] = ()

    def columns(self) -> set[str]:
        return (
            {self.key, self.parent}
            | (self.body.text.columns() if self.body else set())
            | {c for s in self.subjects for c in s.columns()}
        )


class DocumentMapping(_Node):
    table: Name
    kind: Name
    key: Name
    title: Annotated[Text | None, BeforeValidator(_title)] = None
    body: Body | None = None
    metadata: tuple[Name, ...] = ()
    subjects: tuple[Subject, ...] = ()
    identity: StrictBool = False
    # Identity records: how the person is written in free text, by mention kind (name, phone, email).
    mentions: Annotated[tuple[tuple[str, Text], ...], BeforeValidator(_mentions)] = ()
    groups: Annotated[tuple[Groups, ...], BeforeValidator(_groups_list)] = ()
    link: Annotated[Text | None, BeforeValidator(_link)] = None
    children: tuple[ChildMapping, ...] = ()
    # Read through joins: hops whose columns the root's fields may name (RT's queue name), and parts.
    path: tuple[Hop, ...] = ()
    parts: tuple[PartMapping, ...] = ()
    # Read from the source like a document with a path, though it has none: a table that is also a hop
    # of another document's path (MediaWiki's `user`, RT's `users`) can then be a document of its own,
    # its values decoded the way the path reader decodes them (binary columns as UTF-8).
    from_source: StrictBool = False
    # Which rows of the table are documents: ``where`` keeps the rows whose columns hold the values,
    # ``unless`` drops those whose columns hold any of them (RT: a ticket whose status is deleted).
    # A row that stops being a document is removed from the index as a deleted row is, and comes back
    # whole when it is one again: so a document read through paths only, whose root change re-reads
    # every part.
    where: dict[Name, Scalar | tuple[Scalar, ...]] = {}
    unless: dict[Name, Scalar | tuple[Scalar, ...]] = {}
    # ``same`` keeps the rows whose two columns hold the same value: RT's ticket merged into another
    # (``effectiveid`` is then the other's ``id``) is no document of its own, but part of that one.
    same: dict[Name, Name] = {}

    @model_validator(mode="after")
    def _paths_fit(self) -> DocumentMapping:
        if self.reads_paths and self.children:
            raise ValueError("a document read through paths takes its parts from parts:, not children:")
        if (self.where or self.unless or self.same) and not self.reads_paths:
            raise ValueError(
                "where, unless and same need a document read through paths (path:, parts: or from_source): "
                "a document built from its events could not bring its children back when a row is one again"
            )
        for hops in (self.path, *(part.path for part in self.parts)):
            seen = {self.table}
            for hop in hops:
                if not hop.join.anchored and hop.join.to_table not in seen:
                    raise ValueError(
                        f"hop {hop.ref}: joins to {hop.join.to}, but {hop.join.to_table} is not the root or an "
                        "earlier hop"
                    )
                if hop.ref in seen:
                    raise ValueError(f"{hop.ref} appears twice on one path (name a second hop on a table with as:)")
                seen.add(hop.ref)
        names = [part.name for part in self.parts]
        if duplicates := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"part name(s) used twice: {', '.join(duplicates)}")
        return self

    @property
    def reads_paths(self) -> bool:
        """Whether the document is read from the source through joins (its events are only triggers)."""
        return bool(self.path or self.parts or self.from_source)

    @property
    def filter_columns(self) -> tuple[str, ...]:
        """The root's columns that say whether a row is a document (where, unless, same)."""
        return tuple(dict.fromkeys((*self.where, *self.unless, *(c for pair in self.same.items() for c in pair))))

    def is_document(self, row: Mapping[str, Any]) -> bool:
        """Whether the root row is a document (``where``, ``unless`` and ``same``)."""
        kept = all(_wanted(row.get(column), wanted) for column, wanted in self.where.items())
        kept = kept and all(str(row.get(one)) == str(row.get(other)) for one, other in self.same.items())
        return kept and not any(_wanted(row.get(column), wanted) for column, wanted in self.unless.items())

    def path_tables(self) -> set[str]:
        return {hop.table for hops in (self.path, *(p.path for p in self.parts)) for hop in hops}

    def columns(self) -> set[str]:
        """Every column of the root table this mapping reads (for checking it against the schema)."""
        texts = [t for t in (self.title, self.link, self.body.text if self.body else None) if t is not None]
        return (
            {self.key, *self.metadata}
            | {c for t in texts for c in t.columns()}
            | {c for s in self.subjects for c in s.columns()}
            | {c for _, text in self.mentions for c in text.columns()}
            | {c for g in self.groups for c in g.columns()}
            | set(self.filter_columns)
        )

    def document_id(self, source: str, key: Any) -> str:
        return f"{source}/{self.kind}/{key}"


class SourceMapping(_Node):
    source: Name
    # A real application's database (mediawiki, request-tracker, tryton): the source is configured only where
    # the local stack runs the application (STREAMS_STACK_APPS) or STREAMS_SOURCE_DSNS names its DSN.
    application: Name | None = None
    # An example source (the project's own schemas): configured only where STREAMS_EXAMPLE_SOURCES is on
    # or STREAMS_SOURCE_DSNS names its DSN.
    example: bool = False
    documents: Annotated[tuple[DocumentMapping, ...], Field(min_length=1)]
    path: Path | None = None  # the file it was loaded from (set by the loader, not by the file)


@dataclass(frozen=True)
class Mappings:
    """Every source's mapping, indexed by (source, table) for one lookup per event."""

    sources: tuple[SourceMapping, ...]
    _roots: dict[tuple[str, str], DocumentMapping] = field(init=False, repr=False, compare=False)
    _children: dict[tuple[str, str], tuple[DocumentMapping, ChildMapping]] = field(
        init=False, repr=False, compare=False
    )
    _triggers: dict[tuple[str, str], tuple[DocumentMapping, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        roots: dict[tuple[str, str], DocumentMapping] = {}
        children: dict[tuple[str, str], tuple[DocumentMapping, ChildMapping]] = {}
        triggers: dict[tuple[str, str], list[DocumentMapping]] = {}
        for source in self.sources:
            for document in source.documents:
                if document.reads_paths:
                    # A path document's tables are triggers; two documents may share one (RT's users).
                    for table in {document.table, *document.path_tables()}:
                        if (source.source, table) in roots or (source.source, table) in children:
                            raise MappingError(f"table {table!r} of source {source.source!r} is mapped twice")
                        triggers.setdefault((source.source, table), []).append(document)
                    continue
                for table in (document.table, *(child.table for child in document.children)):
                    if (source.source, table) in triggers:
                        raise MappingError(f"table {table!r} of source {source.source!r} is mapped twice")
                _claim(roots, children, (source.source, document.table))
                roots[(source.source, document.table)] = document
                for child in document.children:
                    _claim(roots, children, (source.source, child.table))
                    children[(source.source, child.table)] = (document, child)
        object.__setattr__(self, "_roots", roots)
        object.__setattr__(self, "_children", children)
        object.__setattr__(self, "_triggers", {where: tuple(docs) for where, docs in triggers.items()})

    @property
    def names(self) -> tuple[str, ...]:
        """The mapped sources' names, in name order."""
        return tuple(sorted(source.source for source in self.sources))

    def triggered(self, source: str, table: str) -> tuple[DocumentMapping, ...]:
        """The path documents whose parts a change to `table` may affect (read from the source, not
        mapped from the event: streams/sources/read_paths.py)."""
        return self._triggers.get((source, table), ())

    def tables(self, source: SourceMapping) -> list[str]:
        """Every table whose changes the source's mapping reads, in mapping order."""
        tables: list[str] = []
        for document in source.documents:
            hops = [hop.table for hops in (document.path, *(p.path for p in document.parts)) for hop in hops]
            for table in [document.table, *(child.table for child in document.children), *hops]:
                if table not in tables:
                    tables.append(table)
        return tables

    def part_change(self, event: ChangeEvent) -> PartChange | None:
        """What this event means for the index; None when its table is not searchable (or is a
        trigger of a path document, see `triggered`)."""
        if (root := self._roots.get((event.source, event.table))) is not None:
            change = _root_part(root, event)
        elif (pair := self._children.get((event.source, event.table))) is not None:
            change = _child_part(*pair, event)
        else:
            return None
        return replace(change, content_hash=content_hash(change))


_ZONED_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)$")


def _canonical(value: Any) -> Any:
    """One spelling per value. Debezium writes a timestamptz as an ISO string whose fraction digits
    vary (`...:04.49Z`, `...:04.490000Z`); the same instant must hash the same however it was spelt."""
    if isinstance(value, str) and _ZONED_TIMESTAMP.match(value):
        text = value.replace("Z", "+00:00")
        whole, _, rest = text.partition(".")
        if rest:  # Python parses at most 6 fraction digits
            digits = re.match(r"\d+", rest)
            assert digits is not None
            text = f"{whole}.{digits.group()[:6].ljust(6, '0')}{rest[digits.end() :]}"
        try:
            return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        except ValueError:
            return value
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


def content_hash(change: PartChange) -> str:
    """A hash of every field the mapping turned the row into: what the index shows of the row."""
    fields = {
        "text": change.text,
        "text_format": change.text_format,
        "title": change.title,
        "groups": list(change.groups) if change.groups is not None else None,
        "metadata": _canonical(change.metadata),
        "subjects": sorted(change.subjects),
        "link": change.link,
        "identity": change.identity,
    }
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _claim(
    roots: Mapping[tuple[str, str], Any], children: Mapping[tuple[str, str], Any], where: tuple[str, str]
) -> None:
    if where in roots or where in children:
        raise MappingError(f"table {where[1]!r} of source {where[0]!r} is mapped twice")


def _checked_row(event: ChangeEvent, columns: set[str]) -> dict[str, Any]:
    """The row image, with every mapped column present.

    Extra columns (one added to the table mid-stream) are ignored. A mapped column the row lacks
    (dropped or renamed in the source) is a MappingError that names it: indexing the row without it
    would silently lose its text, title or groups. A delete needs no content, so there the missing
    columns are read as empty instead: a delete must never be lost to a schema change.
    """
    row = event.row
    missing = sorted(columns - row.keys())
    if not missing:
        return row
    if event.op is Op.DELETE:
        return {**dict.fromkeys(missing), **row}
    raise MappingError(
        f"{event.source}.{event.table} row lacks mapped column(s) {', '.join(missing)} (dropped or renamed in "
        f"the source?); the row has: {', '.join(sorted(row))}. Update connectors/{event.source}.mapping.yaml"
    )


def _part(
    event: ChangeEvent,
    row: Mapping[str, Any],
    *,
    document_id: str,
    part_id: str,
    role: Literal["root", "child"],
    body: Body | None,
    subjects: Iterable[Subject],
    order_key: int | None = None,
) -> PartChange:
    """What a root and a child part take alike: the event's position, and the body and subjects
    their mapping renders from the row."""
    return PartChange(
        source=event.source,
        table=event.table,
        document_id=document_id,
        part_id=part_id,
        role=role,
        deleted=event.op is Op.DELETE,
        version=event.version,
        commit_ts=event.commit_ts,
        text=body.text.render(row) if body else "",
        text_format=body.format if body else "plain",
        subjects=_subjects(subjects, row),
        order_key=order_key,
        origin=event.origin,
        snapshot=event.snapshot,
    )


def _root_part(mapping: DocumentMapping, event: ChangeEvent) -> PartChange:
    row = _checked_row(event, mapping.columns())
    key = _key_value(event, mapping.key)
    part = _part(
        event,
        row,
        document_id=mapping.document_id(event.source, key),
        part_id="root",
        role="root",
        body=mapping.body,
        subjects=mapping.subjects,
    )
    return replace(
        part,
        title=mapping.title.render(row) if mapping.title else None,
        groups=document_groups(mapping.groups, [row]),
        metadata={column: row.get(column) for column in mapping.metadata},
        link=mapping.link.render(row) if mapping.link else None,
        identity=mapping.identity,
        mentions=tuple((kind, value) for kind, text in mapping.mentions if (value := text.render(row).strip())),
    )


def _child_part(parent: DocumentMapping, child: ChildMapping, event: ChangeEvent) -> PartChange:
    row = _checked_row(event, child.columns())
    key = _key_value(event, child.key)
    parent_key = row.get(child.parent)
    if parent_key is None or parent_key == "":
        raise MappingError(f"{event.table} row {key} has no parent ({child.parent} is {parent_key!r})")
    if child.mode == "latest":
        part_id, order_key = child.table, _order_key(key, child)
    else:
        part_id, order_key = f"{child.table}/{key}", None
    return _part(
        event,
        row,
        document_id=parent.document_id(event.source, parent_key),
        part_id=part_id,
        role="child",
        body=child.body,
        subjects=child.subjects,
        order_key=order_key,
    )


def _key_value(event: ChangeEvent, column: str) -> Any:
    """The message key is authoritative (it is the primary key); the row is the fallback."""
    value = event.key.get(column, event.row.get(column))
    if value is None or value == "":
        raise MappingError(f"{event.source}.{event.table} change has no key column {column!r}")
    return value


def _order_key(key: Any, child: ChildMapping) -> int:
    try:
        return int(key)
    except (TypeError, ValueError) as exc:
        raise MappingError(f"{child.table}.{child.key} {key!r} is not an integer; mode latest needs one") from exc


def _subjects(subjects: Iterable[Subject], row: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(value for subject in subjects if (value := subject.value(row)) is not None)


def _column(row: Mapping[str, Any], name: str) -> Any:
    if name not in row:
        raise MappingError(f"row has no column {name!r} (columns: {', '.join(sorted(row))})")
    return row[name]


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


# Loading --------------------------------------------------------------------------------------------


def load_mappings(
    directory: Path, applications: Collection[str] = (), configured: Collection[str] = (), *, examples: bool = True
) -> Mappings:
    """Load every ``*.mapping.yaml`` in ``directory``; raise MappingError naming the file on any problem.

    A mapping of a real application's database counts only when `applications` names the application
    or `configured` names its source (see SourceMapping.application); an example source's only when
    `examples` is on or `configured` names it."""
    paths = sorted(directory.glob("*.mapping.yaml"))
    if not paths:
        raise MappingError(f"no *.mapping.yaml files in {directory}")
    sources = tuple(
        source
        for source in (load_mapping_file(path) for path in paths)
        if source.source in configured
        or ((source.application is None or source.application in applications) and (examples or not source.example))
    )
    names = [source.source for source in sources]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise MappingError(f"source(s) mapped in more than one file: {', '.join(duplicates)}")
    return Mappings(sources)


def load_mapping_file(path: Path) -> SourceMapping:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read: {exc}") from exc
    try:
        return parse_source_mapping(raw, path)
    except MappingError as exc:
        raise MappingError(f"{path.name}: {exc}") from exc


def parse_source_mapping(raw: Any, path: Path | None = None) -> SourceMapping:
    if isinstance(raw, dict) and "path" in raw:
        raise MappingError("mapping file: unknown key(s) path")
    try:
        mapping = SourceMapping.model_validate(raw)
    except ValidationError as exc:
        # pydantic also reports a list whose every item failed as too short: only an empty one is.
        errors = [e for e in exc.errors() if e["type"] != "too_short" or not e.get("input")]
        raise MappingError("; ".join(_describe(error) for error in errors)) from exc
    return mapping.model_copy(update={"path": path})


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as `documents[0].children[1].mode: <what is wrong>`."""
    loc = list(error["loc"])
    key = loc.pop() if error["type"] in ("missing", "extra_forbidden") and loc else None
    # A title or link given as a string is validated as {column: ...} or {template: ...}: name the field.
    if len(loc) > 1 and loc[-2] in ("title", "link") and loc[-1] in ("column", "template"):
        loc.pop()
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or "mapping file"
    kind, given = error["type"], error.get("input")
    if kind == "missing":
        return f"{where}: missing {key}"
    if kind == "extra_forbidden":
        return f"{where}: unknown key(s) {key}"
    if kind == "too_short":
        return f"{where}: is empty"
    if kind in ("model_type", "dict_type"):
        expected = "string" if loc and loc[-1] in ("title", "link") else "mapping"
        return f"{where}: must be a {expected}, not {type(given).__name__}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if kind == "value_error" else f"{where}: {message} (got {given!r})"
