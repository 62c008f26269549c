"""Parts read through joins: a real application's document, re-read from its database when any row of
its chain changes.

A mapping's `path:` is a list of key lookups from the root table (DocumentMapping.path for the root's
own fields, PartMapping.path for a part). A change to any table of a chain is a trigger: the affected
documents are found by walking the chain back to the root in one SQL query (by the changed row's key,
or for a delete by its before-image's join value), their parts are read again through the same joins,
and each comes out as an ordinary PartChange whose version is the trigger's source position. Why that
is correct, whatever order the triggers arrive in, is in docs/design.md ("Parts read through joins").

`streams verify` reads documents through `read_documents`, the function the worker's triggers use, so a
content hash means the same on both sides. Everything here is synchronous and blocking: the router runs
it off the event loop (asyncio.to_thread), one connection per source.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from streams.errors import MappingError, StreamsError
from streams.observability import metrics
from streams.pipeline.decode_content import (
    INDEXED_TYPES,
    Skipped,
    UndecodableContent,
    html_variant,
    mediawiki_text,
    message_part,
)
from streams.pipeline.document_mapping import (
    Body,
    DocumentMapping,
    Hop,
    Mappings,
    PartMapping,
    SourceMapping,
    Subject,
    content_hash,
    document_groups,
)
from streams.records import ChangeEvent, Op, PartChange, TextFormat
from streams.sources.read_rows import debezium_value

log = logging.getLogger(__name__)

DialectName = Literal["postgres", "mariadb", "sqlite"]
# (sql with %s placeholders, parameters) -> rows as dicts keyed by the selected aliases.
Query = Callable[[str, Sequence[Any]], list[dict[str, Any]]]
ROOT = "r"
# Root keys per read: a change to a row every document joins (a system-wide right) re-reads them all,
# and a database takes a bounded number of parameters per statement (PostgreSQL 65535).
READ_BATCH = 500


class SourceReadError(StreamsError):
    """The source database could not be read (it is down, or the connection broke): retried."""

    stage = "source"
    retryable = True


class ChainBroken(MappingError):
    """A part's chain points to a row that does not exist when the root says it should."""

    stage = "read-path"


@dataclass(frozen=True)
class PartFailure:
    """A part that cannot be read: a dead letter with the reason, while the other parts go on."""

    document_id: str
    part_id: str
    error: StreamsError


Outcome = PartChange | PartFailure


@dataclass(frozen=True)
class Dialect:
    name: DialectName

    def quote(self, name: str) -> str:
        # Names come from a validated mapping (identifiers), quoted so that reserved words such as
        # MediaWiki's `text` and `user` are tables like any other.
        return f"`{name}`" if self.name == "mariadb" else f'"{name}"'

    def prefixed(self, prefix: str, expression: str) -> str:
        literal = "'" + prefix.replace("'", "''") + "'"
        if self.name == "mariadb":
            return f"CONCAT({literal.replace(chr(92), chr(92) * 2)}, {expression})"
        return f"({literal} || {expression})"


def dialect_of(dsn: str) -> Dialect:
    return Dialect("mariadb" if dsn.startswith(("mysql", "mariadb")) else "postgres")


# -- SQL ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Chain:
    """One path as SQL: the root and its hops, each with an alias, and the columns a read selects."""

    dialect: Dialect
    document: DocumentMapping
    hops: tuple[Hop, ...]

    def alias(self, table: str) -> str:
        """The SQL alias of the root or of the hop that `table` names (its table, or its `as`)."""
        if table == self.document.table:
            return ROOT
        for index, hop in enumerate(self.hops):
            if hop.ref == table:
                return f"h{index}"
        raise MappingError(f"{table!r} is not the root or a hop of this path")

    def ancestors(self, at: int) -> list[int]:
        """The hops that hop `at`'s rows depend on, and `at` itself, in path order: a walk back joins
        only these (a path may branch, as RT's queue rights and system rights do from one ticket)."""
        needed = {at}
        for index in range(at, -1, -1):
            hop = self.hops[index]
            if index in needed and not hop.join.anchored and hop.join.to_table != self.document.table:
                needed.add(next(i for i in range(index) if self.hops[i].ref == hop.join.to_table))
        return sorted(needed)

    def column(self, table: str, column: str) -> str:
        return f"{self.alias(table)}.{self.dialect.quote(column)}"

    def _condition(self, index: int, params: list[Any]) -> str:
        hop = self.hops[index]
        own = self.column(hop.ref, hop.join.column)
        if hop.join.anchored:
            terms = [f"{own} = %s"]
            params.append(hop.join.value)
        else:
            if hop.join.prefix:
                own = self.dialect.prefixed(hop.join.prefix, own)
            to = self.column(hop.join.to_table, hop.join.to_column)
            if hop.join.column_prefix:
                to = self.dialect.prefixed(hop.join.column_prefix, to)
            terms = [f"{own} = {to}"]
        for column, wanted in hop.where.items():
            values = wanted if isinstance(wanted, tuple) else (wanted,)
            terms.append(f"{self.column(hop.ref, column)} IN ({', '.join('%s' for _ in values)})")
            params.extend(values)
        return " AND ".join(terms)

    def joins(self, hops: Iterable[int], kind: str, params: list[Any]) -> str:
        q = self.dialect.quote
        return "".join(
            f" {kind} JOIN {q(self.hops[index].table)} h{index} ON {self._condition(index, params)}" for index in hops
        )

    def read_sql(
        self, columns: Sequence[tuple[str, str]], keys: Sequence[Any], restrict: Mapping[str, Any] | None, at: int
    ) -> tuple[str, list[Any]]:
        """Every row of the chain for the roots `keys` (LEFT JOINs: a missing hop shows as NULLs);
        `restrict` narrows hop `at` to one row by its key."""
        params: list[Any] = []
        selected = ", ".join(f"{self.column(t, c)} AS c{i}" for i, (t, c) in enumerate(columns))
        q = self.dialect.quote
        sql = (
            f"SELECT {selected} FROM {q(self.document.table)} {ROOT}{self.joins(range(len(self.hops)), 'LEFT', params)}"
        )
        sql += f" WHERE {self.column(self.document.table, self.document.key)} IN ({', '.join('%s' for _ in keys)})"
        params.extend(keys)
        for column, value in (restrict or {}).items():
            sql += f" AND {self.column(self.hops[at].ref, column)} = %s"
            params.append(value)
        order = [self.column(self.document.table, self.document.key)]
        order += [self.column(hop.ref, k) for hop in self.hops for k in hop.key]
        return sql + " ORDER BY " + ", ".join(order), params

    def walk_back_sql(self, at: int, key: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The root keys whose chain passes through hop `at`'s row with primary key `key`."""
        params: list[Any] = []
        root_key = self.column(self.document.table, self.document.key)
        q = self.dialect.quote
        joins = self.joins(self.ancestors(at), "INNER", params)
        sql = f"SELECT DISTINCT {root_key} AS c0 FROM {q(self.document.table)} {ROOT}{joins}"
        terms = []
        for column, value in key.items():
            terms.append(f"{self.column(self.hops[at].ref, column)} = %s")
            params.append(value)
        return sql + " WHERE " + " AND ".join(terms), params

    def walk_back_deleted_sql(self, at: int, joined_value: Any) -> tuple[str, list[Any]]:
        """The root keys whose chain held hop `at`'s deleted row: those whose earlier hop it joined
        (every root, for a hop joined on a constant: the caller checked the row held it)."""
        params: list[Any] = []
        hop = self.hops[at]
        root_key = self.column(self.document.table, self.document.key)
        q = self.dialect.quote
        joins = self.joins(self.ancestors(at)[:-1], "INNER", params)
        sql = f"SELECT DISTINCT {root_key} AS c0 FROM {q(self.document.table)} {ROOT}{joins}"
        if hop.join.anchored:
            return sql, params
        to = self.column(hop.join.to_table, hop.join.to_column)
        if hop.join.column_prefix:  # the deleted row's column holds the whole reference
            to = self.dialect.prefixed(hop.join.column_prefix, to)
        sql += f" WHERE {to} = %s"
        params.append(f"{hop.join.prefix}{joined_value}" if hop.join.prefix else joined_value)
        return sql, params


# -- reading -------------------------------------------------------------------------------------------


def _columns_of(names: Iterable[str], own: str) -> set[tuple[str, str]]:
    found = set()
    for name in names:
        table, _, column = name.rpartition(".")
        found.add((table or own, column))
    return found


def _body_columns(body: Body | None) -> set[str]:
    if body is None:
        return set()
    return body.text.columns() | (body.decode.columns() if body.decode else set())


def _root_columns(document: DocumentMapping) -> set[tuple[str, str]]:
    names = (
        document.columns()
        | {c for g in document.groups for c in g.columns()}
        | _body_columns(document.body)
        | {hop.join.to for hop in document.path if hop.join.to}
    )
    return _columns_of(names, document.table) | {(hop.ref, hop.join.column) for hop in document.path}


def _part_columns(document: DocumentMapping, part: PartMapping) -> set[tuple[str, str]]:
    names = (
        _body_columns(part.body)
        | {c for s in part.subjects for c in s.columns()}
        | {hop.join.to for hop in part.path if hop.join.to}
    )
    columns = _columns_of(names, part.leaf.ref)
    columns |= {(hop.ref, hop.join.column) for hop in part.path}
    columns |= {(hop.ref, k) for hop in part.path for k in hop.key}
    return columns | {(document.table, document.key)} | {(document.table, c) for c in document.filter_columns}


def _value(value: Any, keep_bytes: bool) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return raw if keep_bytes else raw.decode("utf-8", "replace")
    return debezium_value(value)


class PathReader:
    """Reads one source's path documents (see the module docstring) through `query`."""

    def __init__(
        self, mapping: SourceMapping, dialect: Dialect, query: Query, max_bytes: int, mappings: Mappings | None = None
    ) -> None:
        self.mapping = mapping
        self.dialect = dialect
        self.query = query
        self.max_bytes = max_bytes
        self.mappings = mappings or Mappings((mapping,))

    # The trigger: one change event -> the parts it affects, read again.

    def triggered(self, event: ChangeEvent) -> list[Outcome]:
        outcomes: list[Outcome] = []
        documents = self.mappings.triggered(event.source, event.table)
        if documents:
            self.wait_for_commit(event)
        for document in documents:
            outcomes.extend(self._for_document(document, event))
        return [_versioned(o, event) for o in outcomes]

    def wait_for_commit(self, event: ChangeEvent) -> None:
        """Wait until the trigger's own transaction is visible to a reader.

        MariaDB writes a transaction to its binlog before InnoDB commits it, and Debezium can hand the
        event over in between: a read then would miss the row that triggered it (a new revision whose
        page walks back to nothing), under the trigger's version. A locking read of the trigger's row
        waits for the writer's row lock, which InnoDB holds until the commit is done; the query's own
        transaction ends at once (SourceConnection commits after each read). PostgreSQL has the same
        gap between flushing a commit record and making it visible, far shorter than the trip to the
        router; SELECT ... FOR SHARE there would need the UPDATE privilege and write to the row, so it
        does not wait (docs/design.md, "Parts read through joins")."""
        if self.dialect.name != "mariadb" or event.snapshot or not event.key:
            return
        q = self.dialect.quote
        terms = " AND ".join(f"{q(column)} = %s" for column in event.key)
        self.query(f"SELECT 1 FROM {q(event.table)} WHERE {terms} LOCK IN SHARE MODE", list(event.key.values()))

    def _for_document(self, document: DocumentMapping, event: ChangeEvent) -> list[Outcome]:
        if event.table == document.table:
            key = event.key.get(document.key, event.row.get(document.key))
            if key is None:
                raise MappingError(f"{event.source}.{event.table} change has no key column {document.key!r}")
            own_id = document.document_id(self.mapping.source, key)
            own: list[Outcome]
            if event.op is Op.DELETE:
                own = [_deleted(document, self.mapping.source, key, event)]
            else:  # the root's own row changed: every part may follow it (page_latest moved to a new revision)
                own = self.read_documents(document, [key]).get(own_id, [])
            # The root's table may be a hop of its own parts too (RT: a ticket merged into another brings
            # its messages to that one): the other documents it reaches are read as for any hop.
            return own + self._for_hops(document, event, read=key)
        return self._for_hops(document, event)

    def _for_hops(self, document: DocumentMapping, event: ChangeEvent, read: Any = None) -> list[Outcome]:
        """The parts of `document` that the changed row is a hop of, read again; not those of the
        document whose root key is `read` (read whole already)."""
        outcomes: list[Outcome] = []
        parts: list[PartMapping | None] = [None, *document.parts]
        for part in parts:
            hops = document.path if part is None else part.path
            for at, hop in enumerate(hops):
                if hop.table == event.table:  # a path may read the table twice (under `as` names)
                    outcomes.extend(self._for_hop(document, part, hops, at, event, read))
        return outcomes

    def _for_hop(
        self,
        document: DocumentMapping,
        part: PartMapping | None,
        hops: tuple[Hop, ...],
        at: int,
        event: ChangeEvent,
        read: Any = None,
    ) -> list[Outcome]:
        chain = _Chain(self.dialect, document, hops)
        hop = hops[at]
        if event.op is Op.DELETE:
            before = event.before or {}
            joined = before.get(hop.join.column)
            if joined is None or not hop.matches(before):
                return []
            roots = self._keys(*chain.walk_back_deleted_sql(at, _value(joined, keep_bytes=False)))
            if part is not None and part.mode == "each" and at == len(hops) - 1:
                leaf_key = ",".join(str(_value(before.get(k, event.key.get(k)), False)) for k in hop.key)
                return [
                    _deleted(document, self.mapping.source, root, event, f"{hop.table}/{leaf_key}") for root in roots
                ]
            restrict = None
        else:  # the walk back applies the hop's filters itself
            roots = self._keys(*chain.walk_back_sql(at, event.key))
            before, after = event.before or {}, event.after or {}
            joined = before.get(hop.join.column)
            moved = joined != after.get(hop.join.column) or not hop.matches(after)
            if moved and joined is not None and hop.matches(before):
                # An update that moved the row away (another join value, or out of the hop's where: a
                # Tryton access row archived) re-reads the documents it was on too.
                was = self._keys(*chain.walk_back_deleted_sql(at, _value(joined, keep_bytes=False)))
                roots = sorted({*roots, *was}, key=lambda k: (isinstance(k, str), k))
            restrict = dict(event.key) if part is not None and part.mode == "each" else None
        if read is not None:
            roots = [root for root in roots if str(root) != str(read)]
        if not roots:
            return []
        if part is None:
            return [
                outcome for found in self.read_documents(document, roots, only_root=True).values() for outcome in found
            ]
        return self._read_part(document, part, roots, restrict, at)

    def _keys(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return sorted({row["c0"] for row in self.query(sql, params)}, key=lambda k: (isinstance(k, str), k))

    # Reading documents: the one function both the triggers and `streams verify` go through.

    def read_documents(
        self, document: DocumentMapping, keys: Sequence[Any], only_root: bool = False
    ) -> dict[str, list[Outcome]]:
        """Every part of the documents with root keys `keys` that exist, by document id (version 0)."""
        found: dict[str, list[Outcome]] = {}
        if not keys:
            return found
        chain = _Chain(self.dialect, document, document.path)
        columns = sorted(_root_columns(document))
        bytes_columns = _columns_of(_body_columns(document.body), document.table)
        by_root = self._rows(chain, columns, bytes_columns, keys, None, 0, document.table)
        documents: list[Any] = []
        for key, rows in by_root.items():
            document_id = document.document_id(self.mapping.source, key)
            if document.is_document(rows[0]):
                found[document_id] = [self._root(document, document_id, rows)]
                documents.append(key)
            else:  # the row is no document (where, unless): the index forgets it as a deleted row
                found[document_id] = [_removed(self.mapping.source, document.table, document_id)]
        if only_root:
            return found
        for part in document.parts:
            for outcome in self._read_part(document, part, documents, None, 0):
                found.setdefault(outcome.document_id, []).append(outcome)
        return found

    def _rows(
        self,
        chain: _Chain,
        columns: Sequence[tuple[str, str]],
        bytes_columns: set[tuple[str, str]],
        keys: Sequence[Any],
        restrict: Mapping[str, Any] | None,
        at: int,
        own: str,
    ) -> dict[Any, list[dict[str, Any]]]:
        by_root: dict[Any, list[dict[str, Any]]] = {}
        for start in range(0, len(keys), READ_BATCH):
            sql, params = chain.read_sql(columns, keys[start : start + READ_BATCH], restrict, at)
            self._add_rows(by_root, chain, columns, bytes_columns, sql, params, own)
        return by_root

    def _add_rows(
        self,
        by_root: dict[Any, list[dict[str, Any]]],
        chain: _Chain,
        columns: Sequence[tuple[str, str]],
        bytes_columns: set[tuple[str, str]],
        sql: str,
        params: Sequence[Any],
        own: str,
    ) -> None:
        for raw in self.query(sql, params):
            row: dict[str, Any] = {}
            for index, (table, column) in enumerate(columns):
                value = _value(raw[f"c{index}"], (table, column) in bytes_columns)
                row[f"{table}.{column}"] = value
                if table == own:
                    row[column] = value
            by_root.setdefault(row[f"{chain.document.table}.{chain.document.key}"], []).append(row)

    def _root(self, document: DocumentMapping, document_id: str, rows: list[dict[str, Any]]) -> Outcome:
        first = rows[0]
        try:
            text, text_format = _body(document.body, first, self.max_bytes) if document.body else ("", "plain")
        except StreamsError as exc:
            return PartFailure(document_id, "root", exc)
        if isinstance(text, Skipped):
            text, text_format = "", "plain"
        change = PartChange(
            source=self.mapping.source,
            table=document.table,
            document_id=document_id,
            part_id="root",
            role="root",
            deleted=False,
            version=0,
            commit_ts=_EPOCH,
            text=text,
            text_format=text_format,
            subjects=_subjects(document.subjects, rows),
            title=document.title.render(first) if document.title else None,
            groups=document_groups(document.groups, rows),
            metadata={column: first.get(column) for column in document.metadata},
            link=document.link.render(first) if document.link else None,
            identity=document.identity,
            mentions=tuple(
                (kind, value) for kind, text_ in document.mentions if (value := text_.render(first).strip())
            ),
        )
        return replace(change, content_hash=content_hash(change))

    def _read_part(
        self,
        document: DocumentMapping,
        part: PartMapping,
        keys: Sequence[Any],
        restrict: Mapping[str, Any] | None,
        at: int,
    ) -> list[Outcome]:
        if not keys:
            return []
        chain = _Chain(self.dialect, document, part.path)
        columns = sorted(_part_columns(document, part))
        bytes_columns = _columns_of(_body_columns(part.body), part.leaf.ref)
        by_root = self._rows(chain, columns, bytes_columns, keys, restrict, at, part.leaf.ref)
        outcomes: list[Outcome] = []
        filters = [(column, f"{document.table}.{column}") for column in document.filter_columns]
        for key, rows in by_root.items():
            if filters and not document.is_document({column: rows[0].get(name) for column, name in filters}):
                continue  # no document (where, unless): nothing of it is indexed until its row is one again
            document_id = document.document_id(self.mapping.source, key)
            complete = [row for row in rows if _complete(part, row)]
            if part.mode == "one":
                outcomes.extend(self._one(document, part, document_id, rows, complete))
            elif part.mode == "all":
                outcomes.append(self._all(part, document_id, complete))
            else:
                outcomes.extend(self._each(part, document_id, complete))
        return outcomes

    def _one(
        self,
        document: DocumentMapping,
        part: PartMapping,
        document_id: str,
        rows: list[dict[str, Any]],
        complete: list[dict[str, Any]],
    ) -> list[Outcome]:
        if complete:
            found = self._part(part, document_id, part.name, complete[:1])
            return [found] if found is not None else []
        first_hop = part.path[0]
        if first_hop.join.to is not None and _absent(rows[0].get(first_hop.join.to)):
            return []  # the root points nowhere yet: the part waits for the change that sets it
        # The root points down the chain, yet a row is missing: say which, from the row that got farthest.
        farthest = max(rows, key=lambda row: _reached(part, row))
        hop = part.path[_reached(part, farthest)]
        pointer = hop.join.value if hop.join.to is None else farthest.get(hop.join.to)
        if hop.join.prefix and isinstance(pointer, str) and not pointer.startswith(hop.join.prefix):
            reason = f"{hop.join.to} {pointer!r} is not a {hop.join.prefix!r} address (an external store?)"
        else:
            reason = f"no {hop.ref} row where {hop.join.column} = {pointer!r} (from {hop.join.to or 'a constant'})"
        error = ChainBroken(
            f"{document_id} part {part.name}: the chain from {document.table} points to a missing row: {reason}"
        )
        return [PartFailure(document_id, part.name, error)]

    def _all(self, part: PartMapping, document_id: str, rows: list[dict[str, Any]]) -> Outcome:
        if not rows:
            return _removed(self.mapping.source, part.leaf.table, document_id, part.name)
        found = self._part(part, document_id, part.name, rows)
        assert found is not None  # only an "each" part is ever skipped whole
        return found

    def _each(self, part: PartMapping, document_id: str, rows: list[dict[str, Any]]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        broken = self._broken_mime(part, rows)
        for row in rows:
            part_id = f"{part.leaf.table}/{','.join(str(row[f'{part.leaf.ref}.{k}']) for k in part.leaf.key)}"
            if part_id in broken:
                outcomes.append(PartFailure(document_id, part_id, broken[part_id]))
                continue
            outcome = self._part(part, document_id, part_id, [row])
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _broken_mime(self, part: PartMapping, rows: list[dict[str, Any]]) -> dict[str, StreamsError]:
        """Text parts whose MIME parent is missing or no container: their tree is broken."""
        decode = part.body.decode if part.body else None
        if decode is None or decode.parent is None or decode.content_type is None or len(part.leaf.key) != 1:
            return {}
        leaf, (key,) = part.leaf, part.leaf.key
        parents = {
            row[f"{leaf.ref}.{key}"]: row.get(decode.parent) for row in rows if _is_text(row, decode.content_type)
        }
        wanted: list[Any] = sorted({p for p in parents.values() if not _absent(p)})
        if not wanted:
            return {}
        type_column = decode.content_type.rpartition(".")[2]
        q = self.dialect.quote
        sql = (
            f"SELECT {q(key)} AS c0, {q(type_column)} AS c1 FROM {q(leaf.table)}"
            f" WHERE {q(key)} IN ({', '.join('%s' for _ in wanted)})"
        )
        types = {row["c0"]: _value(row["c1"], False) for row in self.query(sql, wanted)}
        broken: dict[str, StreamsError] = {}
        for own, parent in parents.items():
            if _absent(parent):
                continue
            part_id = f"{leaf.table}/{own}"
            if parent not in types:
                broken[part_id] = UndecodableContent(f"broken MIME tree: {part_id}'s parent {parent} does not exist")
            elif not str(types[parent] or "").lower().startswith("multipart/"):
                broken[part_id] = UndecodableContent(
                    f"broken MIME tree: {part_id}'s parent {parent} is {types[parent]!r}, not a multipart container"
                )
        return broken

    def _part(self, part: PartMapping, document_id: str, part_id: str, rows: list[dict[str, Any]]) -> Outcome | None:
        texts: list[str] = []
        text_format: TextFormat = part.body.format if part.body else "plain"
        for row in rows:
            if part.body is None:
                break
            try:
                text, text_format = _body(part.body, row, self.max_bytes)
            except StreamsError as exc:
                return PartFailure(document_id, part_id, exc)
            if isinstance(text, Skipped):
                if not text.content_type.startswith("multipart/"):
                    metrics.PARTS_SKIPPED.labels(source=self.mapping.source).inc()
                    log.debug("%s %s: %s part skipped (not text)", document_id, part_id, text.content_type)
                if part.mode == "each":
                    return None
                continue
            if text:
                texts.append(text)
        change = PartChange(
            source=self.mapping.source,
            table=part.leaf.table,
            document_id=document_id,
            part_id=part_id,
            role="child",
            deleted=False,
            version=0,
            commit_ts=_EPOCH,
            text="\n\n".join(texts),
            text_format=text_format,
            subjects=_subjects(part.subjects, rows),
            about=part.about,
        )
        return replace(change, content_hash=content_hash(change))


# -- helpers -------------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _absent(value: Any) -> bool:
    return value is None or value == "" or value == 0


def _reached(part: PartMapping, row: Mapping[str, Any]) -> int:
    """How many hops of `part` matched in `row` (a LEFT JOIN row: an unmatched hop reads NULL)."""
    for index, hop in enumerate(part.path):
        if row.get(f"{hop.ref}.{hop.join.column}") is None:
            return index
    return len(part.path)


def _complete(part: PartMapping, row: Mapping[str, Any]) -> bool:
    return _reached(part, row) == len(part.path)


def _is_text(row: Mapping[str, Any], content_type: str) -> bool:
    return str(row.get(content_type) or "text/plain").split(";", 1)[0].strip().lower() in INDEXED_TYPES


def _body(body: Body, row: Mapping[str, Any], max_bytes: int) -> tuple[str | Skipped, TextFormat]:
    decode = body.decode
    if decode is None:
        value = body.text.render(
            {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in row.items()}
        )
        return value, body.format
    assert body.column is not None
    raw = row.get(body.column)
    if decode.flags is not None:
        return mediawiki_text(raw, row.get(decode.flags), max_bytes), body.format
    text = message_part(
        raw,
        row.get(decode.encoding) if decode.encoding else None,
        row.get(decode.content_type) if decode.content_type else None,
        row.get(decode.charset) if decode.charset else None,
        max_bytes,
    )
    content_type = str(row.get(decode.content_type) or "") if decode.content_type else ""
    if content_type.split(";", 1)[0].strip().lower() == "text/html":
        return text, html_variant(body.format)
    return text, body.format


def _subjects(subjects: Iterable[Subject], rows: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    rows = list(rows)
    return frozenset(value for subject in subjects for row in rows if (value := subject.value(row)) is not None)


def _versioned(outcome: Outcome, event: ChangeEvent) -> Outcome:
    if isinstance(outcome, PartFailure):
        return outcome
    return replace(
        outcome, version=event.version, commit_ts=event.commit_ts, origin=event.origin, snapshot=event.snapshot
    )


def _deleted(document: DocumentMapping, source: str, key: Any, event: ChangeEvent, part_id: str = "root") -> PartChange:
    """What a delete event of the part's own table says: the root deleted (the whole document goes), or
    one part of the document with root key `key`, at the event's position."""
    change = _removed(source, event.table, document.document_id(source, key), part_id)  # the deleted row's table
    return replace(
        change, version=event.version, commit_ts=event.commit_ts, origin=event.origin, snapshot=event.snapshot
    )


def _removed(source: str, table: str, document_id: str, part_id: str = "root") -> PartChange:
    """A part read as gone: an `all` part with no rows left, or the root of a row that is no document
    (where, unless). Version 0: the trigger's event gives it its own."""
    change = PartChange(
        source=source,
        table=table,
        document_id=document_id,
        part_id=part_id,
        role="root" if part_id == "root" else "child",
        deleted=True,
        version=0,
        commit_ts=_EPOCH,
    )
    return replace(change, content_hash=content_hash(change))


# -- the source connection, and the router's side ----------------------------------------------------


class SourceConnection:
    """A `Query` over one source database: one connection, opened on first use and opened again after
    a failure (the caller retries a SourceReadError, see streams/retrying.py)."""

    def __init__(self, dsn: str, source: str) -> None:
        self.dsn = dsn
        self.source = source
        self.dialect = dialect_of(dsn)
        self._conn: Any = None

    def _connection(self) -> Any:
        from streams.sources.connect import connect_mariadb, connect_postgres

        if self._conn is None:
            if self.dialect.name == "mariadb":
                self._conn = connect_mariadb(self.dsn, name=self.source)
            else:
                self._conn = connect_postgres(self.dsn, name=self.source)
                self._conn.autocommit = True
        return self._conn

    def __call__(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        import psycopg
        import pymysql
        import pymysql.cursors
        from psycopg.rows import dict_row

        from streams.sources.connect import SourceUnavailable

        try:
            conn = self._connection()
            if self.dialect.name == "mariadb":
                with conn.cursor(pymysql.cursors.DictCursor) as cur:
                    cur.execute(sql, tuple(params))
                    rows = list(cur.fetchall())
                conn.commit()  # end the read transaction: the next read sees what committed since
                return rows
            with conn.cursor(row_factory=dict_row) as cur:
                return list(cur.execute(sql.encode(), tuple(params)).fetchall())
        except (
            SourceUnavailable,
            psycopg.OperationalError,
            psycopg.InterfaceError,
            pymysql.err.OperationalError,
            pymysql.err.InterfaceError,
        ) as exc:
            self.close()
            raise SourceReadError(f"reading the {self.source} database: {exc}") from exc
        except (psycopg.Error, pymysql.err.Error) as exc:
            raise MappingError(f"reading the {self.source} database through its mapping's paths: {exc}") from exc

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # a broken connection may fail to close; it is dropped either way
                log.debug("closing the %s connection: %s", self.source, exc)
            self._conn = None


class PathLookup:
    """The router's reads for every source with path documents, each off the event loop."""

    def __init__(self, readers: Mapping[str, PathReader]) -> None:
        self.readers = dict(readers)

    @classmethod
    def of(cls, settings: Any, mappings: Mappings) -> PathLookup:
        readers = {}
        for source in mappings.sources:
            if any(document.reads_paths for document in source.documents):
                connection = SourceConnection(settings.dsn(source.source), source.source)
                readers[source.source] = PathReader(
                    source, connection.dialect, connection, settings.max_event_bytes, mappings
                )
        return cls(readers)

    def handles(self, event: ChangeEvent) -> bool:
        reader = self.readers.get(event.source)
        return reader is not None and bool(reader.mappings.triggered(event.source, event.table))

    async def read(self, event: ChangeEvent) -> list[Outcome]:
        import asyncio

        from streams.retrying import retry_transient

        reader = self.readers[event.source]
        return await retry_transient(
            lambda: asyncio.to_thread(reader.triggered, event),
            stage="source",
            what=f"reading {event.source} for a change to {event.table}",
        )
