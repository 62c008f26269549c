"""A trigger read from MariaDB waits for its own transaction to be visible (read_paths.py).

MariaDB puts a transaction in its binlog before InnoDB commits it, so Debezium can deliver a row that
a reader cannot see yet. The router's locking read of the trigger's row is what waits: here a
transaction holds a new row uncommitted while the reader asks for it, as the router would in that gap.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from streams.pipeline.document_mapping import load_mappings
from streams.records import ChangeEvent, Op
from streams.settings import Settings
from streams.sources.connect import connect_mariadb
from streams.sources.read_paths import PathReader, SourceConnection

ROOT = Path(__file__).resolve().parents[2]
PROBE = "streams_visibility_probe"


def test_a_trigger_read_waits_for_the_transaction_that_wrote_its_row(local_stack: Settings) -> None:
    dsn = local_stack.dsn("wiki")
    writer = connect_mariadb(dsn)
    with writer.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {PROBE} (id BIGINT PRIMARY KEY, body TEXT) ENGINE=InnoDB")
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {PROBE}")
        (row_id,) = cursor.fetchone()
    writer.commit()
    mapping = load_mappings(ROOT / "connectors", applications=("mediawiki",)).sources[0]
    connection = SourceConnection(dsn, "wiki")
    reader = PathReader(mapping, connection.dialect, connection, 1 << 20)
    event = ChangeEvent("wiki", PROBE, Op.CREATE, {"id": row_id}, None, {"id": row_id}, 1, datetime.now(UTC))
    seen: list[list[dict[str, object]]] = []

    def trigger() -> None:  # what the router does with the event: wait, then read
        reader.wait_for_commit(event)
        seen.append(connection(f"SELECT body FROM {PROBE} WHERE id = %s", [row_id]))

    try:
        with writer.cursor() as cursor:  # binlogged-but-not-yet-committed, held open
            cursor.execute(f"INSERT INTO {PROBE} (id, body) VALUES (%s, 'visible')", (row_id,))
        reading = threading.Thread(target=trigger)
        reading.start()
        time.sleep(1.0)
        assert seen == [], "the read did not wait for the transaction that wrote its row"
        writer.commit()
        reading.join(timeout=30)
        assert seen == [[{"body": "visible"}]]
    finally:
        writer.rollback()
        with writer.cursor() as cursor:
            cursor.execute(f"DELETE FROM {PROBE} WHERE id = %s", (row_id,))
        writer.commit()
        writer.close()
        connection.close()
