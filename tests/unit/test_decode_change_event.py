"""decode_change_event over handmade Debezium 3.3 envelopes and, when captured, real ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.errors import DecodeError
from streams.pipeline.decode_change_event import binlog_version, decode_change_event
from streams.records import ChangeEvent, Op

FIXTURES = Path(__file__).parent / "fixtures"
HANDMADE = FIXTURES / "handmade"
CAPTURED = FIXTURES / "debezium"


def load(path: Path) -> dict[str, Any]:
    fixture: dict[str, Any] = json.loads(path.read_text())
    return fixture


def encode(obj: Any) -> bytes | None:
    return None if obj is None else json.dumps(obj).encode()


def decode_fixture(name: str) -> ChangeEvent | None:
    fixture = load(HANDMADE / f"{name}.json")
    return decode_change_event(fixture["topic"], encode(fixture["key"]), encode(fixture["value"]), 1, 99)


def with_schema(payload: Any) -> dict[str, Any]:
    """What the JSON converter writes with schemas.enable=true (the schema's content is not read)."""
    return {
        "schema": {"type": "struct", "fields": [], "optional": False, "name": "x.Envelope"},
        "payload": payload,
    }


def all_fixtures() -> list[Path]:
    return sorted(HANDMADE.glob("*/*.json")) + (sorted(CAPTURED.glob("*/*.json")) if CAPTURED.is_dir() else [])


@pytest.mark.parametrize("path", all_fixtures(), ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.name}")
def test_every_fixture_decodes_or_is_deliberately_skipped(path: Path) -> None:
    fixture = load(path)
    event = decode_change_event(fixture["topic"], encode(fixture["key"]), encode(fixture["value"]))
    if event is None:
        skipped = fixture["value"] is None or "heartbeat" in fixture["topic"] or "status" in fixture["value"]
        assert skipped, "only tombstones, heartbeats and transaction metadata decode to None"
    else:
        assert event.table == fixture["topic"].rsplit(".", 1)[1]
        assert event.commit_ts.tzinfo is not None and 0 < event.version < 2**63
        assert event.row, "every change has a row image"


def test_postgres_create_uses_lsn_and_the_finest_timestamp() -> None:
    event = decode_fixture("tickets.public.tickets/create")
    assert event is not None
    assert (event.source, event.table, event.op, event.key) == ("tickets", "tickets", Op.CREATE, {"id": 42})
    assert event.version == 24024232
    assert event.commit_ts == datetime(2025, 10, 31, 8, 40, 0, 123456, tzinfo=UTC)
    assert event.after is not None and event.after["access_groups"] == ["support", "network"]
    assert event.origin is not None and (event.origin.partition, event.origin.offset) == (1, 99)
    assert event.snapshot is False


def test_update_is_newer_than_create() -> None:
    created, updated = (
        decode_fixture("tickets.public.tickets/create"),
        decode_fixture("tickets.public.tickets/update"),
    )
    assert created is not None and updated is not None
    assert updated.op is Op.UPDATE and updated.version > created.version
    assert updated.before is not None and updated.before["status"] == "open"


def test_delete_keeps_the_before_image_as_the_row() -> None:
    event = decode_fixture("tickets.public.ticket_comments/delete")
    assert event is not None and event.op is Op.DELETE and event.after is None
    assert event.row["ticket_id"] == 42


def test_snapshot_read_is_flagged() -> None:
    event = decode_fixture("crm.public.contacts/snapshot")
    assert event is not None and event.op is Op.READ and event.snapshot is True


@pytest.mark.parametrize(
    "name",
    [
        "tickets.public.ticket_comments/tombstone",
        "tickets.transaction/begin",
        "tickets.transaction/end",
        "__debezium-heartbeat.wiki/heartbeat",
    ],
)
def test_tombstones_heartbeats_and_transactions_are_skipped(name: str) -> None:
    assert decode_fixture(name) is None


def test_transaction_record_on_a_data_topic_is_skipped() -> None:
    value = {"status": "END", "id": "1:2", "event_count": 3, "data_collections": [], "ts_ms": 1}
    assert decode_change_event("tickets.public.tickets", b'{"id": "1:2"}', encode(value)) is None


def test_mariadb_version_packs_file_position_and_row() -> None:
    event = decode_fixture("wiki.wiki.page/create")
    assert event is not None and event.source == "wiki"
    assert event.version == (3 << 44) | (4471 << 8)
    assert event.commit_ts == datetime(2025, 10, 31, 8, 39, 58, tzinfo=UTC)
    deleted = decode_fixture("wiki.wiki.page/delete")
    assert deleted is not None and deleted.version > event.version  # the next binlog file wins


def test_binlog_version_orders_rows_and_stays_a_signed_long() -> None:
    assert binlog_version("mysql-bin.000003", 10, 2) > binlog_version("mysql-bin.000003", 10, 1)
    assert binlog_version("mysql-bin.000003", 11, 0) > binlog_version("mysql-bin.000003", 10, 255)
    assert binlog_version("mariadb-bin.524287", 2**36 - 1, 10_000) < 2**63
    with pytest.raises(DecodeError, match="sequence"):
        binlog_version("mariadb-bin.524288", 0, 0)
    with pytest.raises(DecodeError, match="position"):
        binlog_version("mariadb-bin.000001", 2**36, 0)
    with pytest.raises(DecodeError, match="binlog file name"):
        binlog_version("nonsense", 4, 0)


def test_schema_wrapped_key_and_value_decode_like_bare_ones() -> None:
    fixture = load(HANDMADE / "crm.public.notes/create.json")
    bare = decode_change_event(fixture["topic"], encode(fixture["key"]), encode(fixture["value"]))
    wrapped = decode_change_event(
        fixture["topic"], encode(with_schema(fixture["key"])), encode(with_schema(fixture["value"]))
    )
    assert wrapped == bare and wrapped is not None and wrapped.key == {"id": 9}


def test_schema_wrapped_null_payload_is_a_tombstone() -> None:
    assert decode_change_event("crm.public.notes", b'{"id": 9}', encode({"schema": None, "payload": None})) is None


def test_source_name_falls_back_to_the_topic_prefix() -> None:
    fixture = load(HANDMADE / "crm.public.notes/create.json")
    del fixture["value"]["source"]["name"]
    event = decode_change_event("crm.public.notes", encode(fixture["key"]), encode(fixture["value"]))
    assert event is not None and event.source == "crm"


def test_timestamp_falls_back_to_milliseconds() -> None:
    fixture = load(HANDMADE / "crm.public.notes/create.json")
    for field in ("ts_us", "ts_ns"):
        del fixture["value"]["source"][field]
    event = decode_change_event("crm.public.notes", encode(fixture["key"]), encode(fixture["value"]))
    assert event is not None and event.commit_ts == datetime(2025, 10, 31, 8, 40, 50, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.update(op="x"), "unknown op"),
        (lambda v: v.update(op="t"), "truncate"),
        (lambda v: v.pop("op"), "no op"),
        (lambda v: v.pop("source"), "no source"),
        (lambda v: v["source"].pop("lsn"), "source position"),
        (lambda v: v["source"].update(lsn="0/16B3748"), "not an integer"),
        (lambda v: v["source"].pop("table"), "no table"),
        (lambda v: v.update(after=None), "no after image"),
        (lambda v: v["source"].update(snapshot="maybe"), "snapshot"),
        (lambda v: [v["source"].pop(f) for f in ("ts_ms", "ts_us", "ts_ns")], "commit time"),
    ],
)
def test_broken_envelopes_raise_decode_error(change: Any, message: str) -> None:
    fixture = load(HANDMADE / "tickets.public.tickets/create.json")
    change(fixture["value"])
    with pytest.raises(DecodeError, match=message) as caught:
        decode_change_event(fixture["topic"], encode(fixture["key"]), encode(fixture["value"]))
    assert caught.value.stage == "decode"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (b'{"id": 1}', b"{not json", "not JSON"),
        (b'{"id": 1}', b"[1, 2]", "not a Debezium envelope"),
        (b'{"id": 1}', b"\x00\x00\x00\x00\x07garbage", "Avro wire format"),
        (None, None, "no key"),
        (b"[]", None, "key is not"),
    ],
)
def test_undecodable_bytes_raise_decode_error(key: bytes | None, value: bytes | None, message: str) -> None:
    value = value or encode(load(HANDMADE / "tickets.public.tickets/create.json")["value"])
    with pytest.raises(DecodeError, match=message):
        decode_change_event("tickets.public.tickets", key, value)


def test_bad_json_wraps_the_library_error() -> None:
    with pytest.raises(DecodeError) as caught:
        decode_change_event("tickets.public.tickets", b'{"id": 1}', b"{")
    assert isinstance(caught.value.__cause__, json.JSONDecodeError)


def test_schema_history_topic_is_skipped() -> None:
    history = {
        "source": {"server": "wiki"},
        "position": {"file": "mariadb-bin.000003"},
        "ddl": "CREATE TABLE page",
    }
    assert decode_change_event("wiki.schema-history", None, encode(history)) is None


def test_a_postgres_incremental_snapshot_read_takes_its_version_from_the_sequence() -> None:
    """Debezium 3.3's incremental snapshot reads (verify --repair) carry `lsn: null` and
    `sequence: ["<last commit lsn>", "<current lsn>"]`; a live change must still carry its lsn."""
    fixture = load(CAPTURED / "tickets.public.tickets" / "snapshot_read.json")
    value = fixture["value"]
    envelope = value.get("payload", value)
    envelope["source"].update(snapshot="incremental", lsn=None, txId=None, sequence='["46084472","46085408"]')
    event = decode_change_event(fixture["topic"], encode(fixture["key"]), encode(value))
    assert event is not None and event.version == 46085408 and event.snapshot
    envelope["source"]["sequence"] = "[null,null]"
    with pytest.raises(DecodeError, match=r"source\.lsn"):
        decode_change_event(fixture["topic"], encode(fixture["key"]), encode(value))
    envelope["source"].update(snapshot="false", sequence='["1","2"]')
    with pytest.raises(DecodeError, match=r"source\.lsn"):
        decode_change_event(fixture["topic"], encode(fixture["key"]), encode(value))


def test_an_event_names_its_source_transaction_by_postgresqls_txid_or_mariadbs_gtid() -> None:
    """Debezium's transaction metadata id for PostgreSQL (`txId:LSN`) changes within one large
    transaction, so the router counts a transaction's rows by the txId (MariaDB: the GTID)."""
    fixture = load(CAPTURED / "crm.public.notes" / "create.json")
    value = fixture["value"]
    value["transaction"] = {"id": f"{value['source']['txId']}:123456", "total_order": 3}
    event = decode_change_event(fixture["topic"], encode(fixture["key"]), encode(value), 1, 99)
    assert event is not None and event.transaction == str(value["source"]["txId"])
    value["source"].pop("txId")
    value["source"]["gtid"] = "0-1-102"
    event = decode_change_event(fixture["topic"], encode(fixture["key"]), encode(value), 1, 99)
    assert event is not None and event.transaction == "0-1-102"
