"""The indexing lane's routing step, over captured Debezium events: every change is forwarded keyed by
its document id (a ticket and its comments share one key, so one partition and one worker), carrying
the Debezium record and its origin; what cannot be routed is dead-lettered with the Debezium origin;
and the indexer, reading a routed record, decodes, measures and dead-letters as the original event."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streams.agents.process_changes import ChangeProcessor, RawMessage
from streams.agents.route_changes import ChangeRouter, decode_routed, encode_routed, unwrap_routed
from streams.agents.write_changes import WriteResult
from streams.errors import IndexingError
from streams.observability.capture_health import CaptureClock
from streams.observability.freshness import FreshnessWindow
from streams.pipeline.document_mapping import Mappings, load_mappings
from streams.records import Origin, PartChange

ROOT = Path(__file__).resolve().parents[2]
CAPTURED = Path(__file__).parent / "fixtures" / "debezium"


@pytest.fixture(scope="module")
def mappings() -> Mappings:
    return load_mappings(ROOT / "connectors")


def raw(name: str, offset: int = 7, partition: int = 1, **after: Any) -> RawMessage:
    fixture = json.loads((CAPTURED / f"{name}.json").read_text())
    value = copy.deepcopy(fixture["value"])
    if after and value is not None:
        value["after"].update(after)
    encoded = json.dumps(value).encode() if value is not None else None
    return RawMessage(fixture["topic"], partition, offset, json.dumps(fixture["key"]).encode(), encoded)


class Recorder:
    def __init__(self) -> None:
        self.forwarded: list[tuple[bytes, bytes]] = []
        self.partitions: list[int | None] = []
        self.dead: list[tuple[Origin, dict[str, object]]] = []
        self.acknowledged = 0

    async def forward(self, key: bytes, value: bytes, partition: int | None) -> Any:
        self.forwarded.append((key, value))
        self.partitions.append(partition)

        async def broker_ack() -> None:
            self.acknowledged += 1

        return broker_ack()

    async def dead_letter(self, origin: Origin, record: dict[str, object]) -> None:
        self.dead.append((origin, record))


def route(mappings: Mappings, messages: list[RawMessage], partitions: int = 1) -> Recorder:
    recorder = Recorder()
    router = ChangeRouter(mappings, recorder.forward, recorder.dead_letter, partitions=partitions)
    asyncio.run(router.route(messages))
    return recorder


def test_a_ticket_and_its_comment_are_keyed_by_the_ticket(mappings: Mappings) -> None:
    ticket = raw("tickets.public.tickets/update")
    ticket_id = json.loads(ticket.value or b"{}")["after"]["id"]
    comment = raw("tickets.public.ticket_comments/create", ticket_id=ticket_id)
    recorder = route(mappings, [ticket, comment])
    keys = [key for key, _ in recorder.forwarded]
    assert keys == [f"tickets/ticket/{ticket_id}".encode()] * 2
    assert recorder.acknowledged == 2  # every forward awaited to the broker before the batch is done


def test_the_routed_record_carries_the_debezium_record_and_its_origin(mappings: Mappings) -> None:
    message = raw("wiki.wiki.revision/create", offset=41, partition=0)
    recorder = route(mappings, [message])
    [(_, value)] = recorder.forwarded
    assert decode_routed(value) == message
    assert unwrap_routed(value, "streams.changes.by-document", 3, 9) == message


def test_undecodable_and_unmappable_events_are_dead_lettered_with_the_debezium_origin(mappings: Mappings) -> None:
    garbage = RawMessage("tickets.public.tickets", 1, 12, b"{}", b"{not json")
    unmapped_column = raw("tickets.public.tickets/update", offset=13)
    broken = json.loads(unmapped_column.value or b"{}")
    del broken["after"]["subject"]  # a mapped column missing: the mapping refuses it
    missing = RawMessage(unmapped_column.topic, 1, 13, unmapped_column.key, json.dumps(broken).encode())
    recorder = route(mappings, [garbage, missing, raw("crm.public.notes/create", offset=14)])
    assert [origin for origin, _ in recorder.dead] == [
        Origin("tickets.public.tickets", 1, 12),
        Origin("tickets.public.tickets", 1, 13),
    ]
    assert recorder.dead[0][1]["value"] == b"{not json" and recorder.dead[0][1]["stage"] == "decode"
    assert len(recorder.forwarded) == 1  # the good event behind them flows on


def test_tombstones_and_debezium_heartbeats_are_not_forwarded(mappings: Mappings) -> None:
    recorder = route(mappings, [raw("tickets.public.tickets/tombstone"), raw("__debezium-heartbeat.tickets/heartbeat")])
    assert recorder.forwarded == [] and recorder.dead == []


def test_a_heartbeat_table_change_reaches_every_partition_and_each_indexer_counts_it(mappings: Mappings) -> None:
    """Every worker owns some partitions: each must see every source's heartbeats, or its /health
    would report a live source as stalled."""
    message = raw("tickets.public.streams_heartbeat/update")
    recorder = route(mappings, [message, raw("tickets.public.tickets/update")], partitions=4)
    assert recorder.partitions == [0, 1, 2, 3, None]  # the heartbeat to each partition, the change by its key
    assert {key for key, _ in recorder.forwarded[:4]} == {b"heartbeat:tickets"}
    assert recorder.acknowledged == 5

    class NoWrites:
        async def write(self, changes: list[PartChange]) -> WriteResult:
            raise AssertionError(f"a heartbeat was indexed: {changes}")

    commit = datetime.fromtimestamp(json.loads(message.value or b"{}")["source"]["ts_ms"] / 1000, UTC)
    capture = CaptureClock(["tickets"], clock=lambda: commit + timedelta(seconds=100))  # started 100 s after it
    processor = ChangeProcessor(
        mappings,
        NoWrites(),
        recorder.dead_letter,
        FreshnessWindow(("tickets",)),
        capture=capture,  # type: ignore[arg-type]
    )
    _, value = recorder.forwarded[2]
    asyncio.run(processor.process([unwrap_routed(value, "streams.changes.by-document", 2, 9)]))
    # counted from the heartbeat's commit, not from the start (0)
    assert capture.age_s("tickets") == pytest.approx(100.0, abs=0.01)
    assert recorder.dead == []


def test_a_record_on_the_routed_topic_that_is_not_routed_is_dead_lettered_with_its_own_origin(
    mappings: Mappings,
) -> None:
    message = unwrap_routed(b"junk", "streams.changes.by-document", 2, 5)
    assert message == RawMessage("streams.changes.by-document", 2, 5, None, b"junk")


class FailingWriter:
    """Refuses every change for good, as Elasticsearch rejecting a document would."""

    def __init__(self) -> None:
        self.seen: list[PartChange] = []

    async def write(self, changes: list[PartChange]) -> WriteResult:
        self.seen.extend(changes)
        return WriteResult(failed=[(change, IndexingError("rejected")) for change in changes])


def test_the_indexer_dead_letters_a_routed_change_with_the_debezium_origin_and_keeps_its_commit_time(
    mappings: Mappings,
) -> None:
    message = raw("crm.public.contacts/update", offset=88, partition=1)
    recorder = route(mappings, [message])
    [(_, value)] = recorder.forwarded
    writer = FailingWriter()
    processor = ChangeProcessor(mappings, writer, recorder.dead_letter, FreshnessWindow(("crm",)))  # type: ignore[arg-type]
    asyncio.run(processor.process([unwrap_routed(value, "streams.changes.by-document", 4, 2)]))
    [change] = writer.seen
    source_ms = json.loads(message.value or b"{}")["source"]["ts_ms"]
    assert int(change.commit_ts.timestamp() * 1000) == source_ms  # freshness counts from the source commit
    [(origin, record)] = recorder.dead
    assert origin == Origin("crm.public.contacts", 1, 88)
    assert (record["origin_topic"], record["origin_partition"], record["origin_offset"]) == (
        "crm.public.contacts",
        1,
        88,
    )
    assert record["value"] == message.value


def test_routed_records_round_trip_without_a_value() -> None:
    message = RawMessage("tickets.public.tickets", 0, 3, None, None)
    assert decode_routed(encode_routed(message)) == message


def test_a_postgres_incremental_snapshot_read_takes_its_version_from_the_sequence(mappings: Mappings) -> None:
    """Debezium 3.3's incremental snapshot reads (migrate start, verify --repair) carry `lsn: null` and
    `sequence: ["<last commit lsn>", "<current lsn>"]`, as captured on the stack."""
    from streams.errors import DecodeError
    from streams.pipeline.decode_change_event import decode_change_event

    message = raw("tickets.public.tickets/snapshot_read")
    value = json.loads(message.value or b"{}")
    envelope = value.get("payload", value)
    envelope["source"].update(snapshot="incremental", lsn=None, txId=None, sequence='["46084472","46085408"]')
    event = decode_change_event(message.topic, message.key, json.dumps(value).encode())
    assert event is not None and event.version == 46085408 and event.snapshot
    envelope["source"]["sequence"] = "[null,null]"
    with pytest.raises(DecodeError, match=r"source\.lsn"):
        decode_change_event(message.topic, message.key, json.dumps(value).encode())
    envelope["source"].update(snapshot="false", sequence='["1","2"]')  # a live change must carry its lsn
    with pytest.raises(DecodeError, match=r"source\.lsn"):
        decode_change_event(message.topic, message.key, json.dumps(value).encode())
