"""The indexing lane's routing step, over captured Debezium events: every change is decoded and mapped
once, by the router, and forwarded keyed by its document id (a ticket and its comments share one key,
so one partition and one worker) with the Debezium record and its origin; what cannot be routed is
dead-lettered with the Debezium origin; and the indexer applies the decoded change as it arrives,
measuring and dead-lettering it as the original event. A routed record written by a router that did
not decode (the previous schema, raw bytes only) is still indexed."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import io
import json
import logging
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.schema import parse_schema

from streams import avro
from streams.agents.process_changes import ChangeProcessor
from streams.agents.route_changes import BurstDetector, ChangeDecoder, ChangeRouter, source_of, unwrap_routed
from streams.agents.write_changes import WriteResult
from streams.errors import DecodeError, IndexingError, MappingError
from streams.observability.capture_health import CaptureClock
from streams.observability.freshness import FreshnessWindow
from streams.pipeline.document_mapping import Mappings, load_mappings
from streams.records import Origin, PartChange, RawMessage, RoutedChange, UnreadableRecord

ROOT = Path(__file__).resolve().parents[2]
CAPTURED = Path(__file__).parent / "fixtures" / "debezium"
ROUTED_V1 = Path(__file__).parent / "fixtures" / "schemas" / "routed_change.v1.avsc"
ROUTED_TOPIC = "streams.changes.by-document"


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


class NoDecoding(ChangeDecoder):
    """The indexer's decoder, which a routed record of the current schema never reaches."""

    def __init__(self) -> None:
        pass

    def decode(self, message: RawMessage) -> RoutedChange | None:
        raise AssertionError(f"the indexer decoded {message.origin} again")


def unwrap(value: bytes, decoder: ChangeDecoder | None = None) -> RoutedChange | UnreadableRecord | None:
    return unwrap_routed(value, ROUTED_TOPIC, 3, 9, decoder or NoDecoding())


def test_a_ticket_and_its_comment_are_keyed_by_the_ticket(mappings: Mappings) -> None:
    ticket = raw("tickets.public.tickets/update")
    ticket_id = json.loads(ticket.value or b"{}")["after"]["id"]
    comment = raw("tickets.public.ticket_comments/create", ticket_id=ticket_id)
    recorder = route(mappings, [ticket, comment])
    keys = [key for key, _ in recorder.forwarded]
    assert keys == [f"tickets/ticket/{ticket_id}".encode()] * 2
    assert recorder.acknowledged == 2  # every forward awaited to the broker before the batch is done


ROUTABLE = sorted(
    str(path.relative_to(CAPTURED).with_suffix(""))
    for path in CAPTURED.glob("*/*.json")
    if path.stem not in ("tombstone", "begin", "end", "heartbeat")
)


@pytest.mark.parametrize("name", ROUTABLE)
def test_the_indexer_receives_the_change_the_router_decoded_without_decoding_again(
    mappings: Mappings, name: str
) -> None:
    """Every field of the part change (text, subjects, groups, metadata, mentions, version, commit
    time, origin) crosses the repartition topic unchanged, with the Debezium record itself."""
    message = raw(name, offset=41, partition=0)
    expected = ChangeDecoder(mappings).decode(message)
    assert expected is not None
    recorder = route(mappings, [message])
    _, value = recorder.forwarded[0]
    assert unwrap(value) == expected
    assert expected.message == message
    if expected.change is not None:
        assert expected.change.origin == Origin(message.topic, 0, 41)


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
        async def write(self, changes: list[PartChange], turn: object = None) -> WriteResult:
            raise AssertionError(f"a heartbeat was indexed: {changes}")

    commit = datetime.fromtimestamp(json.loads(message.value or b"{}")["source"]["ts_ms"] / 1000, UTC)
    capture = CaptureClock(["tickets"], clock=lambda: commit + timedelta(seconds=100))  # started 100 s after it
    processor = ChangeProcessor(NoWrites(), recorder.dead_letter, FreshnessWindow(("tickets",)), capture=capture)  # type: ignore[arg-type]
    _, value = recorder.forwarded[2]
    heartbeat = unwrap(value)
    assert isinstance(heartbeat, RoutedChange) and heartbeat.change is None
    asyncio.run(processor.process([heartbeat]))
    # counted from the heartbeat's commit, not from the start (0)
    assert capture.age_s("tickets") == pytest.approx(100.0, abs=0.01)
    assert recorder.dead == []


def test_a_record_on_the_routed_topic_that_is_not_routed_is_dead_lettered_with_its_own_origin() -> None:
    unreadable = unwrap(b"junk")
    assert isinstance(unreadable, UnreadableRecord) and isinstance(unreadable.error, DecodeError)
    assert unreadable.message == RawMessage(ROUTED_TOPIC, 3, 9, None, b"junk")
    recorder = Recorder()
    processor = ChangeProcessor(FailingWriter(), recorder.dead_letter, FreshnessWindow(()))  # type: ignore[arg-type]
    asyncio.run(processor.process([unreadable]))
    [(origin, record)] = recorder.dead
    assert origin == Origin(ROUTED_TOPIC, 3, 9) and record["value"] == b"junk"


def test_a_tombstone_on_the_routed_topic_is_nothing_to_index() -> None:
    assert unwrap_routed(None, ROUTED_TOPIC, 0, 1, NoDecoding()) is None


class FailingWriter:
    """Refuses every change for good, as Elasticsearch rejecting a document would."""

    def __init__(self) -> None:
        self.seen: list[PartChange] = []

    async def write(self, changes: list[PartChange], turn: object = None) -> WriteResult:
        self.seen.extend(changes)
        return WriteResult(failed=[(change, IndexingError("rejected")) for change in changes])


def test_the_indexer_dead_letters_a_routed_change_with_the_debezium_origin_and_keeps_its_commit_time(
    mappings: Mappings,
) -> None:
    message = raw("crm.public.contacts/update", offset=88, partition=1)
    recorder = route(mappings, [message])
    [(_, value)] = recorder.forwarded
    writer = FailingWriter()
    processor = ChangeProcessor(writer, recorder.dead_letter, FreshnessWindow(("crm",)))  # type: ignore[arg-type]
    routed = unwrap_routed(value, ROUTED_TOPIC, 4, 2, NoDecoding())
    assert routed is not None
    asyncio.run(processor.process([routed]))
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
    assert record["subjects"] == sorted(change.subjects) and record["subjects"]


def routed_by_the_previous_router(message: RawMessage) -> bytes:
    """A routed record as a router that did not decode wrote it: the first schema, raw bytes only."""
    schema = parse_schema(json.loads(ROUTED_V1.read_text()))
    body = io.BytesIO()
    record = {
        "origin_topic": message.topic,
        "origin_partition": message.partition,
        "origin_offset": message.offset,
        "key": message.key,
        "value": message.value,
    }
    fastavro.schemaless_writer(body, schema, record)
    return avro.SINGLE_OBJECT_MAGIC + avro._schema_fingerprint(schema) + body.getvalue()


def test_a_record_the_previous_router_wrote_is_decoded_by_the_indexer_as_the_router_would(
    mappings: Mappings,
) -> None:
    """During an upgrade the repartition topic still holds records of the first schema."""
    decoder = ChangeDecoder(mappings)
    for message in (raw("tickets.public.tickets/update", offset=5), raw("wiki.wiki.streams_heartbeat/update")):
        assert unwrap(routed_by_the_previous_router(message), decoder) == decoder.decode(message) is not None


def test_a_previous_router_record_that_no_longer_maps_is_dead_lettered_with_the_debezium_origin(
    mappings: Mappings,
) -> None:
    message = raw("tickets.public.tickets/update", offset=13)
    broken = json.loads(message.value or b"{}")
    del broken["after"]["subject"]
    old = RawMessage(message.topic, 1, 13, message.key, json.dumps(broken).encode())
    unreadable = unwrap(routed_by_the_previous_router(old), ChangeDecoder(mappings))
    assert isinstance(unreadable, UnreadableRecord) and isinstance(unreadable.error, MappingError)
    assert unreadable.message == old


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


def test_a_burst_from_one_table_goes_to_the_backfill_lane_and_the_rest_stays_live(mappings: Mappings) -> None:
    live, backfill = Recorder(), Recorder()
    router = ChangeRouter(mappings, live.forward, live.dead_letter, forward_backfill=backfill.forward, burst_events=3)
    burst = [raw("tickets.public.tickets/update", offset=offset, id=offset) for offset in range(3)]
    note = raw("crm.public.notes/create", offset=9)
    asyncio.run(router.route([*burst, note]))
    assert len(backfill.forwarded) == 3
    assert len(live.forwarded) == 1
    assert live.acknowledged == 1 and backfill.acknowledged == 3


def test_a_burst_spread_over_a_sources_tables_is_one_burst(mappings: Mappings) -> None:
    # An import of tickets writes tickets and their comments: 2 + 2 changes, under 3 in either table.
    router, live, backfill = two_lanes(mappings, burst_events=3)
    tickets = [new_ticket(100 + n, offset=n) for n in range(2)]
    comments = [
        raw("tickets.public.ticket_comments/create", offset=5 + n, id=900 + n, ticket_id=100 + n) for n in range(2)
    ]
    asyncio.run(router.route([*tickets, *comments, raw("crm.public.notes/create", offset=9)]))
    assert (len(live.forwarded), len(backfill.forwarded)) == (1, 4)


def two_lanes(mappings: Mappings, **burst: Any) -> tuple[ChangeRouter, Recorder, Recorder]:
    """A router with a live and a backfill lane, and its burst settings."""
    live, backfill = Recorder(), Recorder()
    return (
        ChangeRouter(mappings, live.forward, live.dead_letter, forward_backfill=backfill.forward, **burst),
        live,
        backfill,
    )


def keyed(message: RawMessage, row_id: int) -> RawMessage:
    """The message keyed by `row_id` as Debezium keys a row (the document's id comes from the key)."""
    return dataclasses.replace(message, key=json.dumps({"id": row_id}).encode())


def new_ticket(ticket_id: int, offset: int) -> RawMessage:
    """A ticket row inserted, keyed by its id."""
    return keyed(raw("tickets.public.tickets/create", offset=offset, id=ticket_id), ticket_id)


def test_during_an_import_of_new_documents_an_edit_of_an_existing_one_stays_live(mappings: Mappings) -> None:
    router, live, backfill = two_lanes(mappings, burst_events=4)
    # Four new tickets and a comment on one of them (a child of a new document), with a person's
    # comment on an existing ticket among them: only that one is live work.
    imported = [new_ticket(100 + n, offset=n) for n in range(4)]
    imported.append(raw("tickets.public.ticket_comments/create", offset=5, id=900, ticket_id=100))
    edit = raw("tickets.public.ticket_comments/create", offset=6, id=901, ticket_id=7)
    asyncio.run(router.route([*imported[:2], edit, *imported[2:]]))
    assert [key for key, _ in live.forwarded] == [b"tickets/ticket/7"]
    assert sorted({key for key, _ in backfill.forwarded}) == [f"tickets/ticket/{100 + n}".encode() for n in range(4)]
    assert len(backfill.forwarded) == 5


def test_an_imports_child_rows_read_before_their_documents_do_not_make_it_a_bulk_update(mappings: Mappings) -> None:
    """Comments of an import's new tickets come on their own topic, and may be read before the tickets:
    inserted rows never count as updates, so a person's comment on an existing ticket stays live."""
    router, live, backfill = two_lanes(mappings, burst_events=4)
    comments = [raw("tickets.public.ticket_comments/create", offset=n, id=900 + n, ticket_id=100 + n) for n in range(4)]
    edit = in_transaction(raw("tickets.public.ticket_comments/create", offset=8, id=990, ticket_id=7), 990)
    asyncio.run(router.route([*comments, edit]))
    asyncio.run(router.route([new_ticket(100 + n, offset=10 + n) for n in range(4)]))
    assert b"tickets/ticket/7" in [key for key, _ in live.forwarded]
    assert sorted({key for key, _ in backfill.forwarded}) == [f"tickets/ticket/{100 + n}".encode() for n in range(4)]


def test_a_bulk_update_of_existing_documents_goes_to_the_backfill_lane_whole(mappings: Mappings) -> None:
    # Updates alone burst: nothing tells a person's edit from the migration's, so all go to backfill.
    router, live, backfill = two_lanes(mappings, burst_events=4)
    start = 1_800_000_000.0
    updates = [keyed(raw("tickets.public.tickets/update", offset=n, id=n), n) for n in range(4)]
    created = new_ticket(50, offset=8)
    asyncio.run(router.route([committed_at(message, start) for message in (*updates, created)]))
    assert (len(live.forwarded), len(backfill.forwarded)) == (0, 5)


def test_a_few_large_changes_are_a_burst_by_their_bytes(mappings: Mappings) -> None:
    # An import that creates large documents one at a time: two changes, far under the count, but
    # together over the bytes; a small change of another source stays live.
    pages = [raw("tickets.public.tickets/update", offset=offset, id=offset) for offset in range(2)]
    size = sum(len(message.value or b"") for message in pages)
    router, live, backfill = two_lanes(mappings, burst_events=100, burst_bytes=size)
    asyncio.run(router.route([*pages, raw("crm.public.notes/create", offset=9)]))
    assert (len(live.forwarded), len(backfill.forwarded)) == (1, 2)
    # One byte more than the two weigh, and they are live work.
    router, live, backfill = two_lanes(mappings, burst_events=100, burst_bytes=size + 1)
    asyncio.run(router.route(pages))
    assert (len(live.forwarded), len(backfill.forwarded)) == (2, 0)


def test_a_sources_topic_prefix_may_hold_dots() -> None:
    assert source_of("tickets.public.tickets") == "tickets"
    assert source_of("acme.eu.tickets.public.tickets") == "acme.eu.tickets"


def test_without_a_burst_every_change_stays_live(mappings: Mappings) -> None:
    live, backfill = Recorder(), Recorder()
    router = ChangeRouter(mappings, live.forward, live.dead_letter, forward_backfill=backfill.forward, burst_events=3)
    asyncio.run(router.route([raw("tickets.public.tickets/update", offset=1), raw("crm.public.notes/create")]))
    assert len(live.forwarded) == 2 and not backfill.forwarded


def test_a_snapshot_read_goes_to_the_backfill_lane(mappings: Mappings) -> None:
    live, backfill = Recorder(), Recorder()
    router = ChangeRouter(mappings, live.forward, live.dead_letter, forward_backfill=backfill.forward, burst_events=0)
    message = raw("tickets.public.tickets/update")
    value = json.loads(message.value or b"{}")
    value["op"], value["source"]["snapshot"] = "r", "true"
    read = RawMessage(message.topic, message.partition, message.offset, message.key, json.dumps(value).encode())
    asyncio.run(router.route([read, raw("crm.public.notes/create")]))
    assert len(backfill.forwarded) == 1 and len(live.forwarded) == 1


def committed_at(message: RawMessage, seconds: float) -> RawMessage:
    """The message as if its source had committed it `seconds` after the epoch."""
    value = json.loads(message.value or b"{}")
    nanoseconds = int(seconds * 1_000_000_000)
    value["source"].update(ts_ms=nanoseconds // 1_000_000, ts_us=nanoseconds // 1_000, ts_ns=nanoseconds)
    return dataclasses.replace(message, value=json.dumps(value).encode())


def test_a_burst_cut_into_small_batches_still_goes_to_the_backfill_lane(mappings: Mappings) -> None:
    router, live, backfill = two_lanes(mappings, burst_events=4, burst_window_s=1.0)
    start = 1_800_000_000.0
    for batch in range(3):  # 2 + 2 + 2 changes committed within a second: a burst from the second batch on
        messages = [raw("tickets.public.tickets/update", offset=2 * batch + n, id=n) for n in range(2)]
        asyncio.run(router.route([committed_at(m, start + 0.3 * batch + 0.1 * n) for n, m in enumerate(messages)]))
    assert (len(live.forwarded), len(backfill.forwarded)) == (2, 4)
    # Committed later than the window after them: the next edit is live again.
    edit = in_transaction(raw("tickets.public.tickets/update", offset=9), 990)
    asyncio.run(router.route([committed_at(edit, start + 5.0)]))
    assert (len(live.forwarded), len(backfill.forwarded)) == (3, 4)


def test_an_import_read_slowly_is_still_a_burst_by_its_commit_times(mappings: Mappings) -> None:
    """A router that has fallen behind reads an import's changes in small batches far apart: what
    counts is how close together the source committed them, not when the router read them."""
    now = [0.0]
    router, live, backfill = two_lanes(mappings, burst_events=4, burst_window_s=1.0, clock=lambda: now[0])
    start = 1_800_000_000.0
    for batch in range(3):  # read 10 s apart, committed within the same half second
        now[0] += 10.0
        messages = [raw("tickets.public.tickets/update", offset=2 * batch + n, id=n) for n in range(2)]
        asyncio.run(router.route([committed_at(m, start + 0.1 * (2 * batch + n)) for n, m in enumerate(messages)]))
    assert (len(live.forwarded), len(backfill.forwarded)) == (2, 4)


def test_only_documents_created_while_their_source_bursts_belong_to_a_burst(mappings: Mappings) -> None:
    """A ticket a person created a moment before an import began is theirs: its comment during the
    import stays live. The import's own new tickets and their comments go to the backfill lane."""
    router, live, backfill = two_lanes(mappings, burst_events=4, burst_window_s=1.0)
    start = 1_800_000_000.0
    asyncio.run(router.route([committed_at(new_ticket(7, offset=1), start)]))  # quiet: live
    imported = [committed_at(new_ticket(100 + n, offset=10 + n), start + 30.0) for n in range(4)]
    asyncio.run(router.route(imported))
    comments = [
        raw("tickets.public.ticket_comments/create", offset=20, id=900, ticket_id=100),  # the import's
        raw("tickets.public.ticket_comments/create", offset=21, id=901, ticket_id=7),  # the person's
    ]
    asyncio.run(router.route([committed_at(comment, start + 30.5) for comment in comments]))
    assert [key for key, _ in live.forwarded] == [b"tickets/ticket/7", b"tickets/ticket/7"]
    assert sorted({key for key, _ in backfill.forwarded}) == [f"tickets/ticket/{100 + n}".encode() for n in range(4)]
    assert len(backfill.forwarded) == 5


def test_the_router_says_when_a_source_starts_and_stops_bursting(
    mappings: Mappings, caplog: pytest.LogCaptureFixture
) -> None:
    router, _, _ = two_lanes(mappings, burst_events=4, burst_window_s=1.0)
    start = 1_800_000_000.0
    with caplog.at_level(logging.INFO, logger="streams.agents.route_changes"):
        imported = [committed_at(new_ticket(100 + n, offset=n), start) for n in range(4)]
        asyncio.run(router.route(imported))
        asyncio.run(router.route([committed_at(raw("crm.public.notes/create", offset=9), start + 5.0)]))  # not tickets
        asyncio.run(router.route([committed_at(raw("tickets.public.tickets/update", offset=9), start + 5.0)]))
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "tickets is bursting: the documents it creates now go to the backfill lane",
        "tickets no longer bursts: its changes are live work again",
    ]


def test_a_row_inserted_into_a_document_of_the_burst_follows_it_after_the_burst(mappings: Mappings) -> None:
    """An import's comments come on their own topic and may be read after the import stopped bursting:
    they go where their tickets went. A comment on a ticket that is not the import's stays live."""
    router, live, backfill = two_lanes(mappings, burst_events=4, burst_window_s=1.0)
    start = 1_800_000_000.0
    asyncio.run(router.route([committed_at(new_ticket(7, offset=1), start)]))  # a person's ticket: live
    asyncio.run(router.route([committed_at(new_ticket(100 + n, offset=10 + n), start + 30.0) for n in range(4)]))
    late = [
        raw("tickets.public.ticket_comments/create", offset=20, id=900, ticket_id=100),  # the import's
        raw("tickets.public.ticket_comments/create", offset=21, id=901, ticket_id=7),  # the person's
    ]
    asyncio.run(router.route([committed_at(comment, start + 45.0) for comment in late]))  # the burst is over
    assert [key for key, _ in live.forwarded] == [b"tickets/ticket/7", b"tickets/ticket/7"]
    assert len(backfill.forwarded) == 5


def in_transaction(message: RawMessage, transaction: int) -> RawMessage:
    """The message as if its source had committed it in transaction `transaction`."""
    value = json.loads(message.value or b"{}")
    value["source"]["txId"] = transaction
    value["transaction"] = {"id": f"{transaction}:{value['source'].get('lsn', 0)}", "total_order": 1}
    return dataclasses.replace(message, value=json.dumps(value).encode())


@pytest.mark.parametrize(("hold_s", "second_lane"), [(5.0, "backfill"), (0.0, "live")])
def test_a_source_stays_bursting_through_a_pause_in_an_import_through_an_api(
    mappings: Mappings, hold_s: float, second_lane: str
) -> None:
    """An import through an application's API commits a transaction per ticket, and pauses: the tickets
    it creates 2 s after its first burst are the burst's with the hold; without it they would go live."""
    router, live, backfill = two_lanes(mappings, burst_events=4, burst_window_s=1.0, burst_hold_s=hold_s)
    start = 1_800_000_000.0

    def ticket(n: int, at: float) -> RawMessage:
        return in_transaction(committed_at(new_ticket(n, offset=n), at), 5000 + n)

    asyncio.run(router.route([ticket(100 + n, start + 0.1 * n) for n in range(4)]))
    asyncio.run(router.route([ticket(200 + n, start + 2.0 + 0.1 * n) for n in range(2)]))
    lanes = {"live": live, "backfill": backfill}
    second = sorted(key for key, _ in lanes[second_lane].forwarded if key.startswith(b"tickets/ticket/2"))
    assert second == [b"tickets/ticket/200", b"tickets/ticket/201"]
    # Well after the hold, a new ticket is a person's again.
    asyncio.run(router.route([ticket(300, start + 20.0)]))
    assert [key for key, _ in live.forwarded][-1] == b"tickets/ticket/300"


def test_a_new_document_in_a_transaction_of_its_own_during_an_import_in_large_ones_stays_live(
    mappings: Mappings,
) -> None:
    """An import commits its tickets a batch per transaction; a person creates a ticket in the same second,
    in a transaction of their own. Only the import's tickets go to the backfill lane."""
    router, live, backfill = two_lanes(mappings, burst_events=4, burst_window_s=1.0, burst_hold_s=5.0)
    start = 1_800_000_000.0
    imported = [in_transaction(committed_at(new_ticket(100 + n, offset=n), start), 9000) for n in range(6)]
    person = in_transaction(committed_at(new_ticket(7, offset=20), start + 0.5), 9001)
    asyncio.run(router.route([*imported[:3], person, *imported[3:]]))
    assert [key for key, _ in live.forwarded] == [b"tickets/ticket/7"]
    assert len(backfill.forwarded) == 6


def test_an_imports_rows_read_after_a_later_live_edit_are_still_the_bursts(mappings: Mappings) -> None:
    """A lagging topic: the router reads a person's edit committed 30 s after an import before the
    import's last tickets. Each change is judged by its own commit time, so those tickets are still the
    burst's, and the edit stays live."""
    router, live, backfill = two_lanes(mappings, burst_events=4, burst_window_s=1.0, burst_hold_s=5.0)
    start = 1_800_000_000.0
    asyncio.run(router.route([committed_at(new_ticket(100 + n, offset=n), start) for n in range(4)]))
    edit = committed_at(raw("tickets.public.ticket_comments/create", offset=8, id=990, ticket_id=7), start + 30.0)
    asyncio.run(router.route([edit]))
    asyncio.run(router.route([committed_at(new_ticket(200 + n, offset=10 + n), start + 0.2) for n in range(2)]))
    assert [key for key, _ in live.forwarded] == [b"tickets/ticket/7"]
    assert sorted(
        {key for key, _ in backfill.forwarded} - {f"tickets/ticket/{100 + n}".encode() for n in range(4)}
    ) == [
        b"tickets/ticket/200",
        b"tickets/ticket/201",
    ]


def test_a_burst_is_found_among_rows_read_out_of_commit_order() -> None:
    """Rows read in reverse commit order still make a burst, and only the commit times in it (or within
    the hold after it) are the burst's."""
    detector = BurstDetector(events=4, window_s=1.0, hold_s=2.0)
    start = 1_800_000_000.0
    for n in reversed(range(4)):
        detector.count([("wiki", start + 0.25 * n, 10)])
    assert all(detector.at("wiki", start + 0.25 * n) for n in range(4))
    assert detector.at("wiki", start + 2.5)  # within the hold after the burst's last commit
    assert not detector.at("wiki", start + 3.0)
    assert not detector.at("wiki", start - 0.5)  # before the burst: a person's
    assert not detector.at("tickets", start)


def test_the_first_rows_of_large_transactions_read_at_a_batchs_end_do_not_make_a_burst_of_small_ones(
    mappings: Mappings,
) -> None:
    """An import commits three large transactions, and the router reads the first three rows of each at
    the end of a batch: once a transaction has grown large, its first rows no longer count as small
    transactions' rows, so the person's ticket committed among them stays live."""
    router, live, backfill = two_lanes(mappings, burst_events=4, burst_window_s=1.0, burst_hold_s=5.0)
    start = 1_800_000_000.0
    imports = [
        [
            in_transaction(committed_at(new_ticket(100 * t + n, offset=10 * t + n), start + 0.2 * t), 7000 + t)
            for n in range(6)
        ]
        for t in (1, 2, 3)
    ]
    person = in_transaction(committed_at(new_ticket(7, offset=99), start + 0.7), 7999)
    batches = [
        imports[0][:3],
        imports[0][3:] + imports[1][:3],
        imports[1][3:] + imports[2][:3],
        [*imports[2][3:], person],
    ]
    for batch in batches:
        asyncio.run(router.route(batch))
    assert b"tickets/ticket/7" in [key for key, _ in live.forwarded]
    # The rows of each transaction read once it was known to be large went to the backfill lane.
    assert {key for key, _ in backfill.forwarded} >= {
        f"tickets/ticket/{100 * t + n}".encode() for t in (1, 2, 3) for n in range(3, 6)
    }


def test_an_imports_child_rows_in_a_large_transaction_go_to_the_backfill_lane_before_their_documents(
    mappings: Mappings,
) -> None:
    """The import's comments come on their own topic and are read before their new tickets: in a large
    transaction they are bulk work whatever document they are of. A person's comment stays live."""
    router, live, backfill = two_lanes(mappings, burst_events=4)
    comments = [
        in_transaction(raw("tickets.public.ticket_comments/create", offset=n, id=900 + n, ticket_id=100 + n), 8000)
        for n in range(4)
    ]
    edit = in_transaction(raw("tickets.public.ticket_comments/create", offset=8, id=990, ticket_id=7), 8001)
    asyncio.run(router.route([*comments, edit]))
    assert [key for key, _ in live.forwarded] == [b"tickets/ticket/7"]
    assert len(backfill.forwarded) == 4


def test_a_persons_edit_of_a_long_page_is_live_however_many_bytes_its_row_holds(mappings: Mappings) -> None:
    """A transaction is large by its rows, not its bytes: a person's one-row edit of a long page (a
    revision is the whole page's text) over the burst bytes stays live."""
    edit = in_transaction(raw("tickets.public.ticket_comments/create", offset=8, id=990, ticket_id=7), 8101)
    router, live, backfill = two_lanes(mappings, burst_events=100, burst_bytes=len(edit.value or b"") // 2)
    asyncio.run(router.route([edit]))
    assert [key for key, _ in live.forwarded] == [b"tickets/ticket/7"] and not backfill.forwarded


def in_gtid(message: RawMessage, gtid: str, order: int = 1) -> RawMessage:
    """The message as if MariaDB had committed it in transaction `gtid`, as its `order`-th event."""
    value = json.loads(message.value or b"{}")
    value["source"]["gtid"] = gtid
    value["transaction"] = {"id": gtid, "total_order": order, "data_collection_order": 1}
    return dataclasses.replace(message, value=json.dumps(value).encode())


def test_an_import_through_an_api_whose_page_rows_are_read_before_their_revisions_sends_the_revisions_to_backfill(
    mappings: Mappings,
) -> None:
    """A wiki import a page per transaction: the router reads the small page rows first (no burst by
    themselves), then the revisions, which carry the bytes. Once those make a burst, the revisions go to
    the backfill lane though their pages went live."""
    start = 1_800_000_000.0

    def row(table: str, n: int, **after: Any) -> RawMessage:
        message = raw(f"wiki.wiki.{table}/create", offset=n, **after)
        key = {"page_id": 500 + n} if table == "page" else {"rev_id": 900 + n}
        message = dataclasses.replace(message, key=json.dumps(key).encode())
        return in_gtid(committed_at(message, start + 0.1 * n), f"0-1-{700 + n}")

    pages = [row("page", n, page_id=500 + n) for n in range(3)]
    text = "A long manual page. " * 200
    revisions = [row("revision", n, rev_id=900 + n, rev_page=500 + n, rev_text=text) for n in range(3)]
    size = sum(len(message.value or b"") for message in revisions[:2])
    router, live, backfill = two_lanes(mappings, burst_events=100, burst_bytes=size, burst_hold_s=5.0)
    asyncio.run(router.route(pages))
    asyncio.run(router.route(revisions))
    assert len(live.forwarded) == 3  # the pages, read while nothing burst
    assert sorted(key for key, _ in backfill.forwarded) == [f"wiki/page/{500 + n}".encode() for n in range(3)]


def test_an_api_imports_revisions_read_before_their_pages_go_to_the_backfill_lane(mappings: Mappings) -> None:
    """A wiki import a page per transaction, read as it commits: some revisions arrive before their
    pages (another topic), ahead of the page row that began their transaction. While the wiki's small
    transactions burst and create pages, such a revision is the import's; a person's revision of an
    existing page, the first event of its own transaction, stays live."""
    start = 1_800_000_000.0
    text = "A long manual page. " * 200

    def row(table: str, n: int, at: float, order: int = 1, **after: Any) -> RawMessage:
        message = raw(f"wiki.wiki.{table}/create", offset=n, **after)
        key = {"page_id": 500 + n} if table == "page" else {"rev_id": 900 + n}
        message = dataclasses.replace(message, key=json.dumps(key).encode())
        return in_gtid(committed_at(message, at), f"0-1-{700 + n}", order)

    def revision(n: int, at: float, order: int = 2) -> RawMessage:  # after its page's row, when it is new
        return row("revision", n, at, order, rev_id=900 + n, rev_page=500 + n, rev_text=text)

    size = len(revision(0, start).value or b"") * 2
    router, live, backfill = two_lanes(mappings, burst_events=100, burst_bytes=size, burst_hold_s=5.0)
    asyncio.run(router.route([row("page", n, start, page_id=500 + n) for n in range(3)]))  # quiet yet: live
    asyncio.run(router.route([revision(n, start + 0.2) for n in range(3, 6)]))  # before their pages
    asyncio.run(router.route([row("page", n, start + 0.2, page_id=500 + n) for n in range(3, 6)]))
    assert sorted(key for key, _ in backfill.forwarded) == sorted(
        [f"wiki/page/{500 + n}".encode() for n in range(3, 6)] * 2
    )
    # A person's revision of an existing page, the first event of its transaction, during the import.
    asyncio.run(router.route([revision(9, start + 0.3, order=1)]))
    assert [key for key, _ in live.forwarded][-1] == b"wiki/page/509"
    # Later, large revisions of existing pages and no page created: a bulk edit is no import of pages.
    asyncio.run(router.route([revision(n, start + 30.0) for n in range(6, 9)]))
    assert len(live.forwarded) == 3 + 1 + 3


def test_taking_changes_back_finds_the_bursts_of_those_left_as_a_window_at_each_one_would() -> None:
    """`uncount` against the plain definition: a burst begins at every change with enough changes (or
    bytes) within the window after it, and overlapping bursts merge."""
    rng = random.Random(7)
    for _ in range(200):
        detector = BurstDetector(events=rng.randint(2, 6), window_s=1.0, size=rng.choice([0, 50, 120]))
        changes = sorted((round(rng.uniform(0, 10), 2), rng.randint(1, 40)) for _ in range(rng.randint(0, 40)))
        detector.count([("s", at, size) for at, size in changes])
        gone = rng.sample(changes, k=min(len(changes), rng.randint(0, 5)))
        detector.uncount("s", gone)
        left = list(changes)
        for change in gone:
            left.remove(change)
        expected: list[tuple[float, float]] = []
        for begin, (first, _) in enumerate(left):
            window = [change for change in left[begin:] if change[0] <= first + 1.0]
            if len(window) >= detector.events or 0 < detector.size <= sum(size for _, size in window):
                if expected and expected[-1][1] >= first:
                    expected[-1] = (expected[-1][0], max(expected[-1][1], window[-1][0]))
                else:
                    expected.append((first, window[-1][0]))
        assert all(detector.at("s", first) for first, _ in expected)
        assert detector._bursts.get("s", []) == expected


def test_a_large_transactions_first_rows_forwarded_live_are_bulk_work_once_it_proves_large(
    mappings: Mappings,
) -> None:
    """The router reads an import's first two rows, and a person's new ticket, before the rest of the
    import's transaction: those rows go live. Once the transaction has proved large the live lane,
    asking before it embeds them, learns they are bulk work; the person's ticket is not."""
    router, live, _ = two_lanes(mappings, burst_events=4, burst_window_s=1.0)
    start = 1_800_000_000.0
    imported = [in_transaction(committed_at(new_ticket(100 + n, offset=n), start), 9000) for n in range(6)]
    person = in_transaction(committed_at(new_ticket(7, offset=20), start + 0.5), 9001)
    asyncio.run(router.route([*imported[:2], person]))
    assert [key for key, _ in live.forwarded] == [b"tickets/ticket/100", b"tickets/ticket/101", b"tickets/ticket/7"]
    assert not router.now_bulk("tickets/ticket/100")  # not known yet
    asyncio.run(router.route(imported[2:]))
    assert router.now_bulk("tickets/ticket/100")
    assert router.now_bulk("tickets/ticket/101")
    assert not router.now_bulk("tickets/ticket/7")
    assert not router.now_bulk("tickets/ticket/104")  # forwarded to the backfill lane already
