"""Each source's insert, update and delete reach Kafka as Debezium change events (c, u, d, then a
tombstone), through the real local stack."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from streams.settings import Settings
from streams.sources.connect import connect_mariadb
from tests.topic_reader import Record, TopicReader

pytestmark = pytest.mark.integration

DELIVERY_DEADLINE_S = 30.0


@dataclass(frozen=True)
class Source:
    topic: str
    key_column: str
    insert: Callable[[Settings, str], int]
    update: Callable[[Settings, int, str], None]
    delete: Callable[[Settings, int], None]
    updated_column: str


def _pg_exec(dsn: str, statement: str, params: tuple[Any, ...]) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchone()[0] if cursor.description else None  # type: ignore[index]


def _maria_exec(settings: Settings, statement: str, params: tuple[Any, ...]) -> int:
    conn = connect_mariadb(settings.dsn("wiki"))
    with conn, conn.cursor() as cursor:
        cursor.execute(statement, params)
        conn.commit()
        return int(cursor.lastrowid)


SOURCES = {
    "tickets": Source(
        topic="tickets.public.tickets",
        key_column="id",
        insert=lambda s, tag: _pg_exec(
            s.dsn("tickets"),
            "INSERT INTO tickets (subject, description) VALUES (%s, %s) RETURNING id",
            (f"printer on fire {tag}", "it smells"),
        ),
        update=lambda s, row, tag: _pg_exec(
            s.dsn("tickets"), "UPDATE tickets SET status = 'open', subject = %s WHERE id = %s", (f"updated {tag}", row)
        ),
        delete=lambda s, row: _pg_exec(s.dsn("tickets"), "DELETE FROM tickets WHERE id = %s", (row,)),
        updated_column="subject",
    ),
    "crm": Source(
        topic="crm.public.contacts",
        key_column="id",
        insert=lambda s, tag: _pg_exec(
            s.dsn("crm"),
            "INSERT INTO contacts (first_name, last_name, email) VALUES (%s, %s, %s) RETURNING id",
            ("Ada", "Lovelace", f"ada-{tag}@example.com"),
        ),
        update=lambda s, row, tag: _pg_exec(
            s.dsn("crm"), "UPDATE contacts SET title = %s WHERE id = %s", (f"updated {tag}", row)
        ),
        delete=lambda s, row: _pg_exec(s.dsn("crm"), "DELETE FROM contacts WHERE id = %s", (row,)),
        updated_column="title",
    ),
    "wiki": Source(
        topic="wiki.wiki.page",
        key_column="page_id",
        insert=lambda s, tag: _maria_exec(
            s, "INSERT INTO page (page_title, page_restrictions) VALUES (%s, %s)", (f"Test_page_{tag}", "staff")
        ),
        update=lambda s, row, tag: _maria_exec(
            s, "UPDATE page SET page_title = %s WHERE page_id = %s", (f"updated {tag}", row)
        ),
        delete=lambda s, row: _maria_exec(s, "DELETE FROM page WHERE page_id = %s", (row,)),
        updated_column="page_title",
    ),
}


@pytest.mark.parametrize("source_name", sorted(SOURCES))
def test_insert_update_delete_become_debezium_events(local_stack: Settings, source_name: str) -> None:
    source = SOURCES[source_name]
    tag = uuid.uuid4().hex[:8]
    with TopicReader(local_stack, source.topic) as reader:
        row = source.insert(local_stack, tag)
        source.update(local_stack, row, tag)
        source.delete(local_stack, row)

        def ours(record: Record) -> bool:
            return record.key == {source.key_column: row}

        records = reader.read(ours, count=4, timeout_s=DELIVERY_DEADLINE_S)

    ops = [r.value["op"] if r.value is not None else None for r in records]
    assert ops == ["c", "u", "d", None], f"events for {source.topic} key {row}: {ops}"
    created, updated, deleted, tombstone = records
    assert created.value["before"] is None
    assert created.value["after"][source.key_column] == row
    assert created.value["source"]["name"] == source_name
    assert updated.value["after"][source.updated_column] == f"updated {tag}"
    assert deleted.value["after"] is None
    assert deleted.value["before"][source.key_column] == row  # the whole old row (REPLICA IDENTITY FULL / binlog FULL)
    assert deleted.value["before"][source.updated_column] == f"updated {tag}"
    assert tombstone.value is None
    assert created.value["transaction"] is not None  # provide.transaction.metadata
    # One partition per key: the newest state is always the last record of its key.
    assert len({r.partition for r in records}) == 1
