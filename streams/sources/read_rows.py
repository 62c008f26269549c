"""Read the sources' rows for `streams verify`: in keyset pages, as Debezium would have published them.

Verify recomputes each row's content hash with the same mapping code the worker runs on change
events, so a row read here must look like the row image in a Debezium event. The connectors use
`time.precision.mode=connect` and `decimal.handling.mode=double` (connectors/*.json); `debezium_value`
converts the database drivers' Python values to those JSON forms. Nothing is ever loaded whole: roots
come in pages ordered by their key, and children are read per page of parents.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from streams.settings import Settings
from streams.sources.connect import connect_mariadb, connect_postgres

PAGE_ROWS = 500
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EPOCH = date(1970, 1, 1)


def debezium_value(value: Any) -> Any:
    """A driver value in the JSON form Debezium's converters give it (see the module docstring)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # timestamptz: io.debezium.time.ZonedTimestamp, an ISO string in UTC
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        # DATETIME / timestamp without zone: Connect Timestamp, milliseconds since the epoch
        return int((value.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))
    if isinstance(value, date):  # Connect Date: days since the epoch
        return (value - _EPOCH).days
    if isinstance(value, time):  # Connect Time: milliseconds past midnight
        return (value.hour * 3600 + value.minute * 60 + value.second) * 1000 + value.microsecond // 1000
    if isinstance(value, timedelta):  # MariaDB TIME arrives as a timedelta
        return int(value / timedelta(milliseconds=1))
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):  # the JSON converter writes bytes as base64
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, list | tuple):
        return [debezium_value(item) for item in value]
    return value


def _identifier(name: str) -> str:
    # Table and column names come from the mapping files; refuse anything that is not a plain name
    # rather than quoting it, so a mapping typo can never become SQL.
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain SQL identifier")
    return name


class SourceRows:
    """One source database, read-only, for the duration of a verify run (a context manager)."""

    def __init__(self, settings: Settings, source: str, page_rows: int = PAGE_ROWS) -> None:
        dsn = settings.dsn(source)  # a SettingsError names the setting when the source has none
        self.source = source
        self.page_rows = page_rows
        self.max_bytes = settings.max_event_bytes
        self._mariadb = dsn.startswith(("mysql", "mariadb"))
        self._conn: Any = connect_mariadb(dsn, name=source) if self._mariadb else connect_postgres(dsn, name=source)
        if not self._mariadb:
            self._conn.autocommit = True

    @property
    def mariadb(self) -> bool:
        return self._mariadb

    def __enter__(self) -> SourceRows:
        return self

    def __exit__(self, *_: object) -> None:
        self._conn.close()

    def _q(self, name: str) -> str:
        name = _identifier(name)
        return f"`{name}`" if self._mariadb else f'"{name}"'

    def _rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        rows = self.query(sql.replace("?", "%s"), params)
        return [{column: debezium_value(value) for column, value in row.items()} for row in rows]

    def query(self, placeholders: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """Rows as the driver returns them (%s placeholders): what read_paths.PathReader reads through."""
        if self._mariadb:
            import pymysql.cursors

            with self._conn.cursor(pymysql.cursors.DictCursor) as cur:
                cur.execute(placeholders, tuple(params))
                rows = list(cur.fetchall())
            self._conn.commit()  # end the read transaction: the next page sees fresh data
        else:
            from psycopg.rows import dict_row

            with self._conn.cursor(row_factory=dict_row) as cur:
                rows = list(cur.execute(placeholders.encode(), tuple(params)).fetchall())
        return rows

    def _in(self, values: Sequence[Any]) -> str:
        return ", ".join("?" for _ in values)

    def pages(self, table: str, key: str) -> Iterator[list[dict[str, Any]]]:
        """Every row of `table`, in pages ordered by `key` (keyset pagination: no OFFSET, no snapshot)."""
        t, k = self._q(table), self._q(key)
        last: Any = None
        while True:
            where = f"WHERE {k} > ? " if last is not None else ""
            page = self._rows(
                f"SELECT * FROM {t} {where}ORDER BY {k} LIMIT {int(self.page_rows)}", [] if last is None else [last]
            )
            if page:
                yield page
            if len(page) < self.page_rows:
                return
            last = page[-1][key]

    def children(self, table: str, parent: str, parents: Sequence[Any]) -> list[dict[str, Any]]:
        """The rows of child `table` whose `parent` column is one of `parents`."""
        if not parents:
            return []
        return self._rows(f"SELECT * FROM {self._q(table)} WHERE {self._q(parent)} IN ({self._in(parents)})", parents)

    def newest_children(self, table: str, key: str, parent: str, parents: Sequence[Any]) -> list[dict[str, Any]]:
        """Per parent in `parents`, its child row with the highest `key` (a wiki page's newest revision)."""
        if not parents:
            return []
        t, k, p = self._q(table), self._q(key), self._q(parent)
        sql = (
            f"SELECT * FROM {t} WHERE {k} IN (SELECT MAX({k}) FROM {t} WHERE {p} IN ({self._in(parents)}) GROUP BY {p})"
        )
        return self._rows(sql, parents)

    def existing(self, table: str, key: str, keys: Sequence[Any]) -> set[str]:
        """Which of `keys` (as text) still have a row in `table`."""
        if not keys:
            return set()
        k = self._q(key)
        rows = self._rows(f"SELECT {k} FROM {self._q(table)} WHERE {k} IN ({self._in(keys)})", keys)
        return {str(row[key]) for row in rows}


def typed_key(text: str) -> Any:
    """A key taken from a document id (always text) in the type the database compares it with."""
    return int(text) if text.lstrip("-").isdigit() else text
