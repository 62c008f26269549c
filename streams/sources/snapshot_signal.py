"""Ask Debezium to re-read chosen rows: an incremental snapshot through the source's signal table.

`streams verify --repair` uses this to bring drifted documents back through the normal pipeline. The
signal is a row in the source's `debezium_signal` table (streams/sources/*.sql; the connectors name
it in `signal.data.collection`). Debezium sees the insert in the log and emits a snapshot read
(`op=r`, `source.snapshot=incremental`) of every row that matches `additional-conditions`; those
reads carry the current log position as their version, so the worker applies them over the drifted
state like any newer change. Nothing is written to the index behind the pipeline's back.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from streams.settings import Settings
from streams.sources.connect import connect_mariadb, connect_postgres
from streams.sources.read_rows import _identifier


def sql_literal(value: Any) -> str:
    """A key as an SQL literal for a snapshot filter (keys are integers or text; nothing else is allowed)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"key {value!r} is neither an integer nor text")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def snapshot_signal(collection: str, column: str, keys: Sequence[Any]) -> dict[str, Any]:
    """The `data` of an execute-snapshot signal for the rows of `collection` whose `column` is in `keys`."""
    if not keys:
        raise ValueError("a snapshot signal needs at least one key")
    condition = f"{_identifier(column)} IN ({', '.join(sql_literal(key) for key in keys)})"
    return {
        "data-collections": [collection],
        "type": "incremental",
        "additional-conditions": [{"data-collection": collection, "filter": condition}],
    }


def table_snapshot_signal(collections: Sequence[str]) -> dict[str, Any]:
    """The `data` of an execute-snapshot signal for every row of `collections` (a new index generation)."""
    if not collections:
        raise ValueError("a snapshot signal needs at least one table")
    return {"data-collections": list(collections), "type": "incremental"}


def send_snapshot_signals(
    settings: Settings, source: str, signals: Sequence[dict[str, Any]], purpose: str = "repair"
) -> list[str]:
    """Insert each signal into the source's signal table, in one transaction; returns the signal ids."""
    if not signals:
        return []
    table = _identifier(settings.signal_table)
    rows = [(f"streams-{purpose}-{uuid.uuid4().hex}", "execute-snapshot", json.dumps(data)) for data in signals]
    dsn = settings.dsn(source)  # the password is needed to connect: never printed
    if dsn.startswith(("mysql", "mariadb")):
        conn = connect_mariadb(dsn, name=source)
        try:
            with conn.cursor() as cur:
                cur.executemany(f"INSERT INTO `{table}` (id, type, data) VALUES (%s, %s, %s)", rows)
            conn.commit()
        finally:
            conn.close()
    else:
        with connect_postgres(dsn, name=source) as pg, pg.cursor() as cur:
            cur.executemany(f'INSERT INTO "{table}" (id, type, data) VALUES (%s, %s, %s)', rows)
    return [row[0] for row in rows]
